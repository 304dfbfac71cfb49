"""Faults injected into real searches over loopback hosts behind a real sshd: a restarted sshd, a
killed controller (resumed, or cleaned up), a changed host key, an unreachable host, a crashing
workload, a real out-of-memory, a timeout, hostile values, Ctrl-C and SIGTERM, a crash among
parallel trials, a failed set-up and a job killed from outside. After each, nothing of the search
is left: no process, reservation, trial folder, key file, or secret in the store or its logs.

Most searches run ``shell``, a workload whose command is a bash script of the test's own (its
steps append lines to an events file, so a test sees what ran on the host and in which order);
the controller runs in a subprocess that registers it (:func:`controller`)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from cherrypick.providers.base import Candidate
from cherrypick.workloads.base import TrialResult, Workload, workload_registry
from cherrypick.workloads.cnn.workload import CNNWorkload
from sshd import Sshd, free_port, keygen, live_pids_in_group
from test_ssh_search import TINY, cherrypick, inventory, search_file

from cherrypick.runners.keys import fingerprint
from cherrypick.searching.execution import POLL_MAX_S
from cherrypick.store import TrialRow, TrialStore
from cherrypick.trials import TrialStatus

HERE = Path(__file__).resolve().parent
#: How long a test waits for a step of a search (a trial, a job to start) before failing.
WAIT_S = 90.0
#: The name of the host a script runs on: its trial folder is ``WORKDIR/cherrypick-HOST``.
HOST = '"${PWD##*/cherrypick-}"'

# -- workloads the controller registers -----------------------------------------------------------


class ShellWorkload(Workload):
    """Runs the ``script`` parameter (bash, in the node's trial folder); the script writes its own
    ``result.json``: ``{"status", "runtime_s", "message"}``."""

    name = "shell"
    result_path = "result.json"

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.script = str(params["script"])
        self.setup = [str(command) for command in params.get("setup", [])]

    def setup_commands(self) -> list[str]:
        return self.setup

    def command(
        self, candidate: Candidate, node_rank: int, master_addr: str, master_port: int
    ) -> str:
        return f"export MASTER_PORT={master_port}; {self.script}"

    def parse_result(self, raw: bytes) -> TrialResult:
        data = json.loads(raw)
        return TrialResult(
            TrialStatus(data["status"]), data.get("runtime_s"), data, data.get("message", "")
        )


class MemoryCappedCNN(CNNWorkload):
    """The CNN workload under a cap on its virtual memory (``cap_kib``, by ``ulimit -v``), so a
    batch too big for the cap really fails to allocate."""

    name = "cnn-capped"

    def __init__(self, params: Mapping[str, Any]) -> None:
        settings = dict(params)
        self.cap_kib = int(settings.pop("cap_kib"))
        super().__init__(settings)

    def command(
        self, candidate: Candidate, node_rank: int, master_addr: str, master_port: int
    ) -> str:
        train = super().command(candidate, node_rank, master_addr, master_port)
        return f"ulimit -v {self.cap_kib} && {train}"


def register() -> None:
    """Called in the controller's process (see :func:`controller`)."""
    workload_registry.register("shell", ShellWorkload)
    workload_registry.register("cnn-capped", MemoryCappedCNN)


def controller(*args: str) -> list[str]:
    """A ``cherrypick`` command line whose process knows this file's workloads."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_ssh_faults;"
        " test_ssh_faults.register(); from cherrypick.cli import main;"
        " raise SystemExit(main(sys.argv[2:]))"
    )
    return [sys.executable, "-c", code, str(HERE), *args]


def _env(cwd: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(cwd / "cache")}


def run_controller(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        controller(*args),
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_env(cwd),
        check=False,
        timeout=300,
    )


class Background:
    """A search running in a subprocess, its stderr (the trial lines) in a file to watch."""

    def __init__(self, spec: Path, cwd: Path) -> None:
        self._err_path = cwd / "controller.err"
        with self._err_path.open("wb") as err:
            self.process = subprocess.Popen(
                controller("search", str(spec), "--json"),
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=_env(cwd),
            )

    @property
    def stderr(self) -> str:
        return self._err_path.read_text(errors="replace")

    def wait_for_phase(self, trial_id: int, phase: str) -> None:
        """Until the display says trial ``trial_id`` is in ``phase``."""
        line = re.compile(rf"^trial +{trial_id}  .*  {phase}( |$)", re.MULTILINE)
        wait_until(lambda: line.search(self.stderr) is not None, f"trial {trial_id} {phase}", self)

    def finish(self, limit_s: float = WAIT_S) -> int:
        try:
            return self.process.wait(limit_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the search did not end within {limit_s:.0f} s:\n{self.stderr}")

    def stop(self, signum: int) -> int:
        """Send ``signum`` to the controller; its exit code."""
        self.process.send_signal(signum)
        return self.finish()


def wait_until(condition: Callable[[], bool], what: str, search: Background | None = None) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if search is not None and search.process.poll() is not None:
            pytest.fail(f"the search ended before {what}:\n{search.stderr}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {WAIT_S:.0f} s:\n{search.stderr if search else ''}")
        time.sleep(0.05)


# -- scripts and what they leave ----------------------------------------------------------------


def events_file(tmp_path: Path) -> Path:
    return tmp_path / "events.log"


def events(tmp_path: Path) -> list[str]:
    path = events_file(tmp_path)
    return path.read_text().splitlines() if path.exists() else []


def note(tmp_path: Path, text: str) -> str:
    """A script step that appends ``text`` (shell words, expanded) to the events file."""
    return f'echo "{text}" >> {shlex.quote(str(events_file(tmp_path)))}'


def started(tmp_path: Path) -> str:
    """The step every script begins with: ``start PID HOST`` (PID: the job's shell)."""
    return note(tmp_path, f"start $$ {HOST}")


def on_term_note(tmp_path: Path) -> str:
    """Record ``killed PID`` when the job's group is sent TERM (as every kill does first)."""
    return f"trap {shlex.quote(note(tmp_path, 'killed $$') + '; exit 143')} TERM"


def result(status: str, message: str = "") -> str:
    body = {"status": status, "runtime_s": 1.0 if status == "ok" else None, "message": message}
    return f"printf '%s' {shlex.quote(json.dumps(body))} > result.json"


def await_file(path: Path) -> str:
    """Wait (at most a minute) for ``path`` to exist."""
    return f"for _ in $(seq 1200); do [ -e {shlex.quote(str(path))} ] && break; sleep 0.05; done"


def await_event(tmp_path: Path, line: str) -> str:
    """Wait (at most a minute) for a line of the events file that starts with ``line``."""
    events = shlex.quote(str(events_file(tmp_path)))
    pattern = shlex.quote(f"^{line}")
    return f"for _ in $(seq 1200); do grep -q {pattern} {events} && break; sleep 0.05; done"


def pid_of(tmp_path: Path, host: str) -> int:
    """The pid of the last job that started on ``host``."""
    starts = [line.split() for line in events(tmp_path) if line.startswith("start ")]
    return int([pid for _, pid, name in starts if name == host][-1])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def group_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])


def trial_processes(tmp_path: Path) -> list[str]:
    """Live processes of this test's trials: each names the test's folder on its command line
    (the job's shell) or works in it (the job's children, its watchdog, in the host's folder)."""
    marker = f"{tmp_path}/"
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        mine = marker in cmdline or cwd.startswith(marker)
        if mine and int(proc.name) != os.getpid() and alive(int(proc.name)):
            found.append(f"{proc.name} in {cwd}: {cmdline}")
    return found


def connections(pid: int, address: str, port: int) -> int:
    """How many TCP connections process ``pid`` has open to ``address:port``."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            sockets.add(os.readlink(fd))
        except OSError:
            continue
    a, b, c, d = (int(part) for part in address.split("."))
    remote = f"{d:02X}{c:02X}{b:02X}{a:02X}:{port:04X}"  # /proc/net/tcp: little-endian IPv4
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        established = fields[3] == "01"
        if established and fields[2] == remote and f"socket:[{fields[9]}]" in sockets:
            count += 1
    return count


def store_path(tmp_path: Path) -> Path:
    return tmp_path / "search.sqlite"


def assert_clean(tmp_path: Path, sshd: Sshd) -> None:
    """No process of a trial, no reservation, no trial folder, no key file, no secret."""
    assert trial_processes(tmp_path) == []
    hosts = tmp_path / "hosts"
    assert not hosts.exists() or list(hosts.iterdir()) == []
    store = store_path(tmp_path)
    with TrialStore(store, create=False) as opened:
        assert opened.reservations() == {}
        assert opened.live_instances() == []
    keys = Path(f"{store}.keys")
    assert not keys.exists() or list(keys.iterdir()) == []
    secrets = sshd.client_key.read_text().splitlines()[1:-1]  # the key's body, line by line
    logs = sorted(Path(f"{store}.logs").glob("*"))
    assert logs, "no trial log to look at"
    for path in [store, *logs, tmp_path / "controller.err"]:
        text = path.read_text(errors="replace") if path.exists() else ""
        assert not [line for line in secrets if line in text], path


def rows(tmp_path: Path) -> list[TrialRow]:
    with TrialStore(store_path(tmp_path), create=False) as opened:
        return opened.trials()


def search_status(tmp_path: Path) -> str:
    with TrialStore(store_path(tmp_path), create=False) as opened:
        return opened.status()


# -- fixtures -------------------------------------------------------------------------------------

#: Three hosts, each its own candidate (their memory sizes differ), cheapest first.
THREE_HOSTS = {
    "h1": {"vcpus": 1, "memory_gib": 4, "price_per_hour": 0.10},
    "h2": {"vcpus": 1, "memory_gib": 8, "price_per_hour": 0.20},
    "h3": {"vcpus": 1, "memory_gib": 16, "price_per_hour": 0.30},
}


def host_of(row: TrialRow) -> str:
    """The host a single-node trial ran on (each test host has its own price)."""
    prices = {fields["price_per_hour"]: name for name, fields in THREE_HOSTS.items()}
    return prices[row.candidate.price_per_hour]


class Search:
    """Writes a test's inventory and search file: ``hosts`` of THREE_HOSTS (with overrides), the
    ``cheapest`` strategy (so trials go in host order), one trial per host."""

    def __init__(self, sshd: Sshd, tmp_path: Path) -> None:
        self.sshd, self.tmp_path = sshd, tmp_path

    def write(
        self,
        workload: Mapping[str, Any],
        hosts: Mapping[str, Mapping[str, Any]] | None = None,
        **overrides: Any,
    ) -> Path:
        hosts = hosts if hosts is not None else {"h1": {}}
        entries = {name: {**THREE_HOSTS[name], **fields} for name, fields in hosts.items()}
        listed = inventory(self.sshd, self.tmp_path / "hosts.yaml", entries)
        settings: dict[str, Any] = {
            "workload": dict(workload),
            "filters": {"providers": ["ssh"], "max_nodes": 1},
            "strategy": "cheapest",
            "budget": {"max_trials": len(hosts)},
            "stop": {"min_trials": len(hosts)},
            "connect_limit_s": 10,
            **overrides,
        }
        return search_file(self.tmp_path, listed, **settings)

    def shell(
        self, script: str, hosts: Mapping[str, Mapping[str, Any]] | None = None, **overrides: Any
    ) -> Path:
        return self.write({"name": "shell", "params": {"script": script}}, hosts, **overrides)


@pytest.fixture
def search(sshd: Sshd, tmp_path: Path) -> Search:
    return Search(sshd, tmp_path)


def run(spec: Path, tmp_path: Path) -> dict[str, Any]:
    """Run the search to its end; its JSON result."""
    done = run_controller("search", str(spec), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def blocked(tmp_path: Path, until: Path | None = None) -> str:
    """A script that records its start and any kill, then waits: for ``until`` to exist (and
    succeeds), or without it, five minutes."""
    wait = "sleep 300 & wait $!" if until is None else await_file(until)
    return "; ".join([on_term_note(tmp_path), started(tmp_path), wait, result("ok")])


# -- the cases ------------------------------------------------------------------------------------


def test_a_restarted_sshd_is_reattached_and_the_job_goes_on(
    sshd: Sshd, search: Search, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    running = Background(search.shell(blocked(tmp_path, until=go)), tmp_path)
    running.wait_for_phase(0, "running")
    job = pid_of(tmp_path, "h1")
    sshd.stop()  # every session dies with it: the controller's polls fail until it is back
    time.sleep(POLL_MAX_S + 0.5)  # longer than any pause between polls: one meets the outage
    assert alive(job), "the job died with the sshd sessions"
    sshd.start()
    go.touch()
    assert running.finish() == 0, running.stderr
    (row,) = rows(tmp_path)
    assert row.status == TrialStatus.OK, row.message
    # Re-attached, not restarted: the one job that ran through the outage gave the result.
    assert [line for line in events(tmp_path) if line.startswith("start")] == [f"start {job} h1"]
    assert_clean(tmp_path, sshd)


def test_resume_after_sigkill_kills_the_orphan_first_and_keeps_finished_trials(
    sshd: Sshd, search: Search, tmp_path: Path
) -> None:
    block = tmp_path / "block"
    block.touch()
    script = "; ".join(
        [
            on_term_note(tmp_path),
            started(tmp_path),
            f"if [ {HOST} = h2 ] && [ -e {shlex.quote(str(block))} ]; then sleep 300 & wait $!; fi",
            result("ok"),
        ]
    )
    running = Background(search.shell(script, {"h1": {}, "h2": {}}), tmp_path)
    running.wait_for_phase(1, "running")
    assert running.stop(signal.SIGKILL) == -signal.SIGKILL
    orphan = pid_of(tmp_path, "h2")
    assert alive(orphan), "the job died with its controller"
    with TrialStore(store_path(tmp_path), create=False) as opened:
        finished = opened.finished_trials()
    assert [r.trial_id for r in finished] == [0]

    block.unlink()  # the re-run finishes at once
    done = run_controller("search", "--resume", str(store_path(tmp_path)), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not alive(orphan)
    first = pid_of(tmp_path, "h1")
    rerun = pid_of(tmp_path, "h2")
    # The orphan was killed before its trial ran again.
    assert events(tmp_path) == [
        f"start {first} h1",
        f"start {orphan} h2",
        f"killed {orphan}",
        f"start {rerun} h2",
    ]
    after = rows(tmp_path)
    assert after[0] == finished[0]  # replayed, not re-run
    assert [r.status for r in after] == [TrialStatus.OK, TrialStatus.OK], after
    assert search_status(tmp_path) == "finished"
    assert json.loads(done.stdout)["trials_used"] == 2
    assert_clean(tmp_path, sshd)


def test_cleanup_after_sigkill_ends_the_orphan_and_releases_the_host(
    sshd: Sshd, search: Search, tmp_path: Path
) -> None:
    running = Background(search.shell(blocked(tmp_path)), tmp_path)
    running.wait_for_phase(0, "running")
    assert running.stop(signal.SIGKILL) == -signal.SIGKILL
    orphan = pid_of(tmp_path, "h1")
    left = trial_processes(tmp_path)  # what "nothing left" looks for: job, children, watchdog
    assert any("cherrypick-watchdog" in p for p in left) and any(str(orphan) in p for p in left)
    store = str(store_path(tmp_path))

    cleaned = cherrypick("cleanup", "--store", store, "--yes", cwd=tmp_path)
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"left running: ssh inventory ssh:h1 (trial 0), from {store}" in cleaned.stdout
    assert "terminated ssh inventory ssh:h1" in cleaned.stdout
    assert not alive(orphan)
    assert f"killed {orphan}" in events(tmp_path)
    again = cherrypick("cleanup", "--store", store, "--yes", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "nothing left running"
    assert_clean(tmp_path, sshd)


def test_a_changed_host_key_is_an_error_and_the_search_goes_on(
    sshd: Sshd, search: Search, tmp_path: Path
) -> None:
    impostor = tmp_path / "other_host_key"
    keygen(impostor)
    pinned = " ".join(Path(f"{impostor}.pub").read_text().split()[:2])
    spec = search.shell(result("ok"), {"h1": {"host_key": pinned}, "h2": {}})
    run(spec, tmp_path)
    refused, measured = rows(tmp_path)
    assert refused.status == TrialStatus.ERROR and measured.status == TrialStatus.OK
    assert "the host key changed" in refused.message
    assert fingerprint(pinned) in refused.message
    assert fingerprint(sshd.host_key_line) in refused.message
    for key in (pinned, sshd.host_key_line):
        assert key.split()[1] not in refused.message  # fingerprints only, never the key
    assert_clean(tmp_path, sshd)


def test_an_unreachable_host_fails_after_the_connect_limit(
    sshd: Sshd, search: Search, tmp_path: Path
) -> None:
    spec = search.shell(result("ok"), {"h1": {"port": free_port()}, "h2": {}}, connect_limit_s=3)
    run(spec, tmp_path)
    unreachable, measured = rows(tmp_path)
    assert unreachable.status == TrialStatus.ERROR and measured.status == TrialStatus.OK
    waited = re.search(r"no SSH connection after ([0-9.]+) s", unreachable.message)
    assert waited is not None, unreachable.message
    assert float(waited.group(1)) >= 3.0
    # Released at once, not after another long wait: nothing of the trial can be on that host.
    assert unreachable.finished_at is not None
    assert unreachable.finished_at - unreachable.started_at < 15.0
    assert_clean(tmp_path, sshd)


def test_a_crashing_workload_is_an_error_with_its_message(
    search: Search, sshd: Sshd, tmp_path: Path
) -> None:
    said = f"shape mismatch in layer4 {uuid.uuid4().hex}"
    script = "; ".join(
        [
            f"if [ {HOST} = h1 ]; then {result('error', said)}; exit 4; fi",
            "echo 'Segmentation fault (core dumped)' >&2",
            "exit 139",
        ]
    )
    outcome = run(search.shell(script, {"h1": {}, "h2": {}}), tmp_path)
    with_result, without = rows(tmp_path)
    assert with_result.status == TrialStatus.ERROR and with_result.message == said
    assert without.status == TrialStatus.ERROR
    assert "exited with 139 and wrote no result" in without.message
    assert "Segmentation fault" in without.message
    assert outcome["recommendation"] is None
    assert_clean(tmp_path, sshd)


def test_a_taken_rendezvous_port_is_retried_on_another(
    search: Search, sshd: Sshd, tmp_path: Path
) -> None:
    """The first start finds its port taken (a real bind fails: the script binds it twice), the
    trial starts again on another port and succeeds."""
    marker = shlex.quote(str(tmp_path / "first-start-done"))
    bind = (
        "import os, socket; port = int(os.environ['MASTER_PORT']);"
        " socks = [socket.socket() for _ in range(int(os.environ['BINDS']))];"
        " [s.bind(('127.0.0.1', port)) for s in socks]"
    )
    script = "; ".join(
        [
            note(tmp_path, "port $MASTER_PORT"),
            f"if [ -e {marker} ]; then BINDS=1; else BINDS=2; touch {marker}; fi",
            f"BINDS=$BINDS {shlex.quote(sys.executable)} -c {shlex.quote(bind)} || exit 1",
            result("ok"),
        ]
    )
    run(search.shell(script), tmp_path)
    (row,) = rows(tmp_path)
    assert row.status == TrialStatus.OK, row.message
    ports = [int(line.split()[1]) for line in events(tmp_path) if line.startswith("port ")]
    assert len(ports) == 2 and ports[0] != ports[1], ports
    assert all(20000 <= port < 32768 for port in ports), ports
    log = next(Path(f"{store_path(tmp_path)}.logs").glob("*")).read_text()
    assert f"rendezvous port {ports[0]} is taken: starting again on {ports[1]}" in log
    assert "Address already in use" in log
    assert_clean(tmp_path, sshd)


def test_a_real_out_of_memory_is_oom_with_the_allocators_message(
    search: Search, sshd: Sshd, tmp_path: Path
) -> None:
    # Torch and a tiny model fit in 2 GB of address space; a batch of 512 images of 224 pixels
    # (1.6 GB for the first activation alone) does not.
    params = {
        **TINY,
        "cap_kib": 2_000_000,
        "width": 1.0,
        "image_size": 224,
        "batch_size": 512,
        "dataset_size": 1024,
    }
    run(search.write({"name": "cnn-capped", "params": params}), tmp_path)
    (row,) = rows(tmp_path)
    assert row.status == TrialStatus.OOM, row.message
    assert "can't allocate memory" in row.message
    assert_clean(tmp_path, sshd)


def test_a_job_past_its_timeout_is_killed_and_a_timeout(
    search: Search, sshd: Sshd, tmp_path: Path
) -> None:
    running = Background(search.shell(blocked(tmp_path), trial_timeout_s=5), tmp_path)
    running.wait_for_phase(0, "running")
    job = pid_of(tmp_path, "h1")
    group = group_of(job)
    assert running.finish() == 0, running.stderr
    (row,) = rows(tmp_path)
    assert row.status == TrialStatus.TIMEOUT
    assert "ran past its 5 s limit" in row.message
    assert live_pids_in_group(group) == []
    assert f"killed {job}" in events(tmp_path)
    assert_clean(tmp_path, sshd)


def pwned() -> Path:
    return Path(f"/tmp/pwned-{uuid.uuid4().hex}")


def test_a_hostile_model_name_is_refused(search: Search, tmp_path: Path) -> None:
    planted = pwned()
    spec = search.write({"name": "cnn", "params": {**TINY, "model": f"x; touch {planted}"}})
    done = cherrypick("search", str(spec), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "model" in done.stderr and "Traceback" not in done.stderr
    assert not planted.exists()
    assert not (tmp_path / "hosts").exists()


def test_a_hostile_inventory_user_is_refused(search: Search, tmp_path: Path) -> None:
    planted = pwned()
    spec = search.shell(result("ok"), {"h1": {"user": f"$(touch {planted})"}})
    done = cherrypick("search", str(spec), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "hosts.0.user" in done.stderr and "Traceback" not in done.stderr
    assert not planted.exists()
    assert not (tmp_path / "hosts").exists()


@pytest.mark.parametrize(
    "param",
    [
        "python",  # reaches the set-up commands (which fail: the job never starts)
        "data",  # reaches the job's shell inside the run's configuration
    ],
)
def test_hostile_workload_values_reach_the_shell_quoted(
    param: str, search: Search, sshd: Sshd, tmp_path: Path
) -> None:
    planted = pwned()
    values = {
        "python": f"python3; touch {planted}",
        "data": f"/nonexistent/'$(touch {planted})'`touch {planted}`; touch {planted} #",
    }
    run(search.write({"name": "cnn", "params": {**TINY, param: values[param]}}), tmp_path)
    (row,) = rows(tmp_path)
    assert row.status == TrialStatus.ERROR, row.message
    assert values[param] in row.message  # it arrived whole, as one word
    assert not planted.exists()
    assert_clean(tmp_path, sshd)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_search_kills_its_jobs_and_is_interrupted(
    signum: int, search: Search, sshd: Sshd, tmp_path: Path
) -> None:
    running = Background(search.shell(blocked(tmp_path)), tmp_path)
    running.wait_for_phase(0, "running")
    job = pid_of(tmp_path, "h1")
    assert running.stop(signum) == 130, running.stderr
    assert "interrupted" in running.stderr and "Traceback" not in running.stderr
    assert search_status(tmp_path) == "interrupted"
    (row,) = rows(tmp_path)
    assert row.status == TrialStatus.RUNNING  # measured nothing: --resume runs it again
    assert not alive(job)
    assert f"killed {job}" in events(tmp_path)
    assert_clean(tmp_path, sshd)


def test_a_crash_among_parallel_trials_spares_the_other_and_the_search_refills(
    search: Search, sshd: Sshd, tmp_path: Path
) -> None:
    # h2 crashes while h1 runs; h1 finishes only once h3 (the refill) has started beside it.
    script = "; ".join(
        [
            started(tmp_path),
            f"case {HOST} in"
            f" h1) {await_event(tmp_path, 'start [0-9]* h3')}; {result('ok')};;"
            f" h2) {await_event(tmp_path, 'start [0-9]* h1')}; {note(tmp_path, 'crash h2')};"
            " echo 'worker died' >&2; exit 1;;"
            f" *) {result('ok')};;"
            " esac",
        ]
    )
    run(search.shell(script, {"h1": {}, "h2": {}, "h3": {}}, parallel=2), tmp_path)
    trials = rows(tmp_path)
    assert [(host_of(r), r.status) for r in trials] == [
        ("h1", TrialStatus.OK),
        ("h2", TrialStatus.ERROR),
        ("h3", TrialStatus.OK),
    ], [r.message for r in trials]
    assert "worker died" in trials[1].message
    lines = [line.split()[0] + " " + line.split()[-1] for line in events(tmp_path)]
    assert lines.index("crash h2") < lines.index("start h3")
    first, crashed, refill = trials
    assert first.finished_at is not None and crashed.finished_at is not None
    assert refill.started_at >= crashed.finished_at and first.finished_at > refill.started_at
    assert_clean(tmp_path, sshd)


def test_a_failed_set_up_leaves_no_connection_open(
    search: Search, sshd: Sshd, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    workload = {
        "name": "shell",
        "params": {
            "script": blocked(tmp_path, until=go),
            "setup": [f"if [ {HOST} = h1 ]; then echo 'no space left' >&2; exit 3; fi"],
        },
    }
    running = Background(search.write(workload, {"h1": {}, "h2": {}}), tmp_path)
    running.wait_for_phase(1, "running")
    # h1 (127.0.0.1) failed its set-up; the search is busy on h2 (127.0.0.2) now.
    assert connections(running.process.pid, sshd.host, sshd.port) == 0
    go.touch()
    assert running.finish() == 0, running.stderr
    failed, measured = rows(tmp_path)
    assert failed.status == TrialStatus.ERROR and "set-up failed (exit 3)" in failed.message
    assert "no space left" in failed.message and measured.status == TrialStatus.OK
    assert_clean(tmp_path, sshd)


def test_a_job_killed_from_outside_is_an_error_saying_it_vanished(
    search: Search, sshd: Sshd, tmp_path: Path
) -> None:
    running = Background(search.shell(blocked(tmp_path)), tmp_path)
    running.wait_for_phase(0, "running")
    job = pid_of(tmp_path, "h1")
    os.killpg(group_of(job), signal.SIGKILL)  # as an out-of-memory killer ends a whole cgroup
    assert running.finish() == 0, running.stderr
    (row,) = rows(tmp_path)
    assert row.status == TrialStatus.ERROR
    assert "vanished" in row.message, row.message
    assert f"killed {job}" not in events(tmp_path)  # not by us: no TERM came first
    assert_clean(tmp_path, sshd)
