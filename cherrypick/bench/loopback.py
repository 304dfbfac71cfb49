"""Where a trial's time goes on real machines: ``cherrypick bench loopback``.

It starts a temporary sshd on loopback (:mod:`cherrypick.bench.sshd`) and lists this machine as
an inventory of hosts, one loopback address each, then times two searches through the Python API,
on the same code paths as a search of your own machines (SSH, the shipped wheel, detached jobs):

- **search**: 4 trials of a tiny CNN (a narrow ResNet-18 on 32-pixel images, on CPU) over two
  1-vCPU and two 2-vCPU hosts, 1 and 2 nodes of each (a real 2-node torchrun); its wall time.
- **overhead**: ``trials`` trials of a no-op workload (its command writes its result at once) on
  1-node candidates, after one warm-up trial that installs the package on the hosts. A no-op's
  whole trial is overhead: launch, boot, connect, set-up, starting and polling the job, fetching
  the result and terminating.

Each trial's phases come from its stored row (``result["trial_seconds"]``); its total is its wall
time in the store (start to finish). The wheel is the controller's own, cached as a search caches
it (``$XDG_CACHE_HOME``), so a second run reuses it. The server stops and its folder is removed
when the benchmark ends, also on Ctrl-C.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cherrypick.bench._harness import Progress, require
from cherrypick.bench.sshd import MAX_ALIASES, Sshd, free_port, loopback_aliases
from cherrypick.errors import SearchInterrupted
from cherrypick.searching.display import Phase, SearchStatus, TrialEvent
from cherrypick.trials import TrialStatus
from cherrypick.workloads.base import TrialResult, Workload

if TYPE_CHECKING:
    from cherrypick.providers.base import Candidate
    from cherrypick.store import TrialRow

__all__ = [
    "FOUR_HOSTS",
    "PHASES",
    "TINY_CNN",
    "LoopbackResult",
    "NoopWorkload",
    "TrialTiming",
    "format_loopback",
    "four_candidates",
    "run_loopback",
    "write_inventory",
]

#: The phases of a trial on real machines, in order (keys of ``result["trial_seconds"]``).
PHASES = ("launch", "boot", "connect", "setup", "run", "collect", "terminate")
#: What the search should take on a 2-core machine, and a no-op trial at most (printed, not
#: enforced).
SEARCH_TARGET_S = 90.0
OVERHEAD_TARGET_S = 5.0
#: The most overhead trials: one host each, and a server has that many loopback addresses.
MAX_TRIALS = MAX_ALIASES + 1

#: A tiny CNN (narrow ResNet-18 on 32-pixel images, 8 iterations) that trains in a few seconds.
TINY_CNN: Mapping[str, Any] = {
    "model": "resnet18",
    "image_size": 32,
    "width": 0.125,
    "classes": 10,
    "batch_size": 4,
    "workers": 0,
    "dataset_size": 64,
    "warmup": 2,
    "iterations": 8,
    "sample_every": 2,
    "epochs": 1,
}
#: Two 1-thread hosts and two 2-thread hosts: 1 and 2 nodes of each, 4 candidates.
FOUR_HOSTS: Mapping[str, Mapping[str, Any]] = {
    "small-1": {"vcpus": 1, "price_per_hour": 0.10, "labels": {"size": "small"}},
    "small-2": {"vcpus": 1, "price_per_hour": 0.10, "labels": {"size": "small"}},
    "big-1": {"vcpus": 2, "price_per_hour": 0.30, "labels": {"size": "big"}},
    "big-2": {"vcpus": 2, "price_per_hour": 0.30, "labels": {"size": "big"}},
}


def write_inventory(sshd: Sshd, path: Path, hosts: Mapping[str, Mapping[str, Any]]) -> Path:
    """An inventory at ``path`` of hosts that are all this machine, through ``sshd`` (one of its
    addresses each, in order; ``hosts`` maps names to fields that override the CPU defaults).
    Their trial folders are under ``path.parent / "hosts"``."""
    if len(hosts) > len(sshd.addresses):
        raise ValueError(f"{len(hosts)} hosts but sshd listens on {len(sshd.addresses)} addresses")
    entries = [
        {
            "name": name,
            "address": address,
            "port": sshd.port,
            "user": sshd.user,
            "key_file": str(sshd.client_key),
            "host_key": sshd.host_key_line,
            "gpu": "none",
            "gpus": 0,
            "memory_gib": 4,
            "workdir": str(path.parent / "hosts"),
            "python": sys.executable,
            **fields,
        }
        for address, (name, fields) in zip(sshd.addresses, hosts.items(), strict=False)
    ]
    path.write_text(yaml.safe_dump({"hosts": entries}))
    return path


def four_candidates(sshd: Sshd, directory: Path) -> Path:
    """The inventory of :data:`FOUR_HOSTS` at ``directory / "hosts.yaml"``."""
    return write_inventory(sshd, directory / "hosts.yaml", FOUR_HOSTS)


class NoopWorkload(Workload):
    """A job that does nothing: its command writes ``{"status": "ok", "runtime_s": 1}``."""

    name = "noop"
    result_path = "noop-result.json"
    _RESULT = '{"status": "ok", "runtime_s": 1}'

    def setup_commands(self) -> list[str]:
        return []

    def command(
        self, candidate: Candidate, node_rank: int, master_addr: str, master_port: int
    ) -> str:
        return f"printf '%s' '{self._RESULT}' > {self.result_path}"

    def parse_result(self, raw: bytes) -> TrialResult:
        try:
            data = json.loads(raw)
            return TrialResult(TrialStatus(data["status"]), float(data["runtime_s"]))
        except (ValueError, TypeError, KeyError) as exc:
            return TrialResult(TrialStatus.ERROR, None, message=f"bad no-op result: {exc}")


@dataclass(frozen=True)
class TrialTiming:
    """One trial: what ran, how it ended, the seconds of each of :data:`PHASES` and in all."""

    trial_id: int
    configuration: str
    status: str
    seconds: Mapping[str, float]
    total_s: float

    @classmethod
    def of_row(cls, row: TrialRow) -> TrialTiming:
        measured = (row.result or {}).get("trial_seconds") or {}
        finished = row.finished_at if row.finished_at is not None else row.started_at
        return cls(
            trial_id=row.trial_id,
            configuration=f"{row.candidate.instance_type} x {row.candidate.nodes}",
            status=str(row.status),
            seconds={phase: float(measured.get(phase, 0.0)) for phase in PHASES},
            total_s=finished - row.started_at,
        )


@dataclass(frozen=True)
class LoopbackResult:
    """The search's trials and wall time (None if not run), and the overhead trials."""

    search: tuple[TrialTiming, ...] | None
    search_wall_s: float | None
    warmup: TrialTiming
    overhead: tuple[TrialTiming, ...]

    @property
    def overhead_median_s(self) -> float:
        return statistics.median(t.total_s for t in self.overhead)

    @property
    def overhead_max_s(self) -> float:
        return max(t.total_s for t in self.overhead)

    def as_dict(self) -> dict[str, Any]:
        search = None
        if self.search is not None:
            search = {
                "trials": [asdict(t) for t in self.search],
                "wall_s": self.search_wall_s,
                "target_s": SEARCH_TARGET_S,
            }
        overhead = {
            "warmup": asdict(self.warmup),
            "trials": [asdict(t) for t in self.overhead],
            "median_s": self.overhead_median_s,
            "max_s": self.overhead_max_s,
            "target_s": OVERHEAD_TARGET_S,
        }
        return {"search": search, "overhead": overhead}


def run_loopback(
    trials: int = 5,
    *,
    search: bool = True,
    progress: Progress | None = None,
    directory: Path | None = None,
) -> LoopbackResult:
    """Time the search (unless ``search`` is false) and ``trials`` no-op trials over a
    temporary sshd whose folder is made in ``directory`` (default: the system's temp folder)."""
    require(1 <= trials <= MAX_TRIALS, "--trials", f"between 1 and {MAX_TRIALS}", trials)
    counter = _Counter((len(FOUR_HOSTS) if search else 0) + 1 + trials, progress)
    with _loopback_sshd(max(len(FOUR_HOSTS), trials), directory) as (sshd, root):
        timings, wall = None, None
        if search:
            timings, wall = _time_search(sshd, root / "search", counter)
        warmup, overhead = _time_overhead(sshd, root / "overhead", trials, counter)
    return LoopbackResult(timings, wall, warmup, overhead)


def format_loopback(result: LoopbackResult) -> str:
    """The tables of trials, the search's wall time and the overhead's median and max."""
    lines = []
    if result.search is not None and result.search_wall_s is not None:
        lines += [
            f"search: {len(result.search)} trials of a tiny ResNet-18 (CPU) over"
            f" {len(FOUR_HOSTS)} loopback hosts",
            *_table(result.search),
            f"search wall time: {result.search_wall_s:.1f} s (target <= {SEARCH_TARGET_S:g} s)",
            "",
        ]
    lines += [
        f"overhead: {len(result.overhead)} trials of a no-op workload on 1-node candidates,"
        f" after 1 warm-up trial ({result.warmup.total_s:.2f} s)",
        *_table(result.overhead),
        f"overhead per trial: median {result.overhead_median_s:.2f} s,"
        f" max {result.overhead_max_s:.2f} s (target <= {OVERHEAD_TARGET_S:g} s)",
    ]
    return "\n".join(lines)


def _table(timings: Sequence[TrialTiming]) -> list[str]:
    width = max(len("configuration"), *(len(t.configuration) for t in timings))
    header = f"{'trial':>5}  {'configuration':<{width}}  {'status':<8}" + "".join(
        f"{name:>10}" for name in (*PHASES, "total")
    )
    rows = [
        f"{t.trial_id:>5}  {t.configuration:<{width}}  {t.status:<8}"
        + "".join(f"{t.seconds[p]:>10.2f}" for p in PHASES)
        + f"{t.total_s:>10.2f}"
        for t in timings
    ]
    return [header, *rows]


def _time_search(
    sshd: Sshd, directory: Path, counter: _Counter
) -> tuple[tuple[TrialTiming, ...], float]:
    directory.mkdir()
    hosts = four_candidates(sshd, directory)
    spec = {
        "workload": {"name": "cnn", "params": dict(TINY_CNN)},
        "objective": {"kind": "cost"},
        "filters": {"providers": ["ssh"], "max_nodes": 2},
    }
    started = time.monotonic()
    rows = _search(spec, hosts, len(FOUR_HOSTS), directory / "search.sqlite", counter)
    return tuple(TrialTiming.of_row(r) for r in rows), time.monotonic() - started


def _time_overhead(
    sshd: Sshd, directory: Path, trials: int, counter: _Counter
) -> tuple[TrialTiming, tuple[TrialTiming, ...]]:
    """One warm-up search of one trial, then one of ``trials``; one host per candidate (each
    of another memory size: the search keeps one candidate per distinct hardware)."""
    directory.mkdir()
    noop = {
        f"noop-{n + 1}": {"vcpus": 1, "memory_gib": n + 1, "price_per_hour": 0.10}
        for n in range(trials)
    }
    hosts = write_inventory(sshd, directory / "hosts.yaml", noop)
    spec = {
        "workload": {"name": NoopWorkload.name},
        "objective": {"kind": "runtime"},
        "filters": {"providers": ["ssh"], "max_nodes": 1},
    }
    workload = NoopWorkload()
    (warmup,) = _search(spec, hosts, 1, directory / "warmup.sqlite", counter, workload)
    rows = _search(spec, hosts, trials, directory / "overhead.sqlite", counter, workload)
    return TrialTiming.of_row(warmup), tuple(TrialTiming.of_row(r) for r in rows)


def _search(
    sections: Mapping[str, Any],
    hosts: Path,
    trials: int,
    store: Path,
    counter: _Counter,
    workload: Workload | None = None,
) -> tuple[TrialRow, ...]:
    """Run exactly ``trials`` trials of the search ``sections`` describe over ``hosts``."""
    from cherrypick.searching import run_search
    from cherrypick.spec import parse_spec

    spec = parse_spec(
        {
            **sections,
            "budget": {"max_trials": trials},
            "stop": {"min_trials": trials},
            "prior": "none",
            "inventory": str(hosts),
            "trial_timeout_s": 300,
            "connect_limit_s": 20,
            "store": str(store),
        },
        source="loopback benchmark",
    )
    try:
        result = run_search(spec, dry_run=False, workload=workload, display=counter)
    except SearchInterrupted:
        # Its store goes with the temporary folder: there is nothing to resume.
        raise KeyboardInterrupt from None
    return result.rows


class _Counter:
    """A search display that reports every finished trial to ``progress``; the search's own
    messages go to stderr. Trial threads call it: the count is locked."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self.progress = progress
        self._lock = threading.Lock()

    def trial(self, event: TrialEvent) -> None:
        if event.phase is not Phase.DONE:
            return
        with self._lock:
            self.done += 1
            if self.progress is not None:
                self.progress(self.done, self.total)

    def search(self, status: SearchStatus) -> None:
        pass

    def message(self, line: str) -> None:
        print(line, file=sys.stderr)

    def close(self) -> None:
        pass


@contextmanager
def _loopback_sshd(hosts: int, parent: Path | None) -> Iterator[tuple[Sshd, Path]]:
    """A running sshd with ``hosts`` addresses, and the temporary folder it and the searches
    work in; both gone afterwards."""
    root = Path(tempfile.mkdtemp(prefix="cherrypick-loopback-", dir=parent))
    try:
        (root / "sshd").mkdir()
        sshd = Sshd(root / "sshd", free_port(), aliases=loopback_aliases(hosts - 1))
        sshd.start()
        try:
            yield sshd, root
        finally:
            sshd.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
