"""The search loop on the real simulated provider: results, store, parallel batches, failures,
Ctrl-C, and the Python API with a custom workload."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
from cherrypick.providers.base import Candidate, Instance, TrialRun
from cherrypick.providers.simulated import SimulatedProvider
from cherrypick.workloads.base import TrialResult, Workload

from cherrypick.api import search
from cherrypick.cli import main
from cherrypick.errors import HopelessJobError, SearchInterrupted, StoreError
from cherrypick.store import TrialStore

SMALL = {"providers": ["aws"], "max_nodes": 2}


class Steps(Workload):
    """A custom workload: 10 GPU-hours of work that scales perfectly, for dry runs."""

    name = "steps"

    def setup_commands(self) -> list[str]:
        return ["true"]

    def command(
        self, candidate: Candidate, node_rank: int, master_addr: str, master_port: int
    ) -> str:
        return "echo 1"

    def parse_result(self, raw: bytes) -> TrialResult:
        return TrialResult("ok", float(raw))

    def estimate_runtime(self, candidate: Candidate) -> float:
        return 36000.0 / candidate.total_gpus


def _write_spec(tmp_path: Path, **extra: object) -> Path:
    spec = {
        "workload": {
            "name": "cnn",
            "params": {"model": "alexnet", "epochs": 30, "dataset_size": 13000, "classes": 10},
        },
        "objective": {"kind": "cost", "max_runtime_s": 900},
        "filters": SMALL,
        "budget": {"max_trials": 10},
        # The loop is tested here, not the cost rule (tests/test_spend.py): trials run.
        "stop": {"cost_aware": False},
        **extra,
    }
    path = tmp_path / "search.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def test_dry_run_search_recommends_and_stores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.sqlite"
    code = main(["search", str(_write_spec(tmp_path)), "--dry-run", "--json", "--exhaustive",
                 "--store", str(store)])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0
    result = json.loads(out.out)
    rec = result["recommendation"]
    assert {"provider", "instance_type", "gpu", "gpus_per_node", "nodes"} <= rec.keys()
    assert rec["runtime_s"] <= 900 and rec["cost_usd"] > 0
    assert 1 <= result["trials_used"] <= 10 and result["search_cost_usd"] > 0
    truly, optimum = result["recommendation_true"], result["optimum"]
    assert truly["instance_type"] == rec["instance_type"] and truly["nodes"] == rec["nodes"]
    assert optimum["cost_usd"] <= truly["cost_usd"] + 1e-9
    assert result["gap"] == pytest.approx(truly["cost_usd"] / optimum["cost_usd"] - 1)
    assert out.err.count("trial ") >= result["trials_used"]
    with TrialStore(store, create=False) as opened:
        assert opened.status() == "finished"
        assert len(opened.finished_trials()) == result["trials_used"]
        assert opened.result()["recommendation"]["trial_id"] == rec["trial_id"]  # type: ignore[index]
        assert opened.live_instances() == []


def test_a_store_with_another_search_needs_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, store = _write_spec(tmp_path), str(tmp_path / "s.sqlite")
    assert main(["search", str(spec), "--dry-run", "--quiet", "--store", store]) == 0
    again = ["search", str(spec), "--dry-run", "--quiet", "--store", store, "--seed", "1"]
    assert main(again) == 2
    assert f"--resume {store}" in capsys.readouterr().err


def test_custom_workload_through_the_api(tmp_path: Path) -> None:
    result = search(
        Steps(), "cost", max_runtime_s=3 * 3600, providers=["gcp"], max_trials=8, cost_aware=False
    )
    rec = result.recommendation
    assert rec is not None and rec.runtime_s <= 3 * 3600
    assert isinstance(result.trials, pd.DataFrame) and len(result.trials) == result.trials_used
    assert result.trials["feasible"].any()
    assert result.to_json()["recommendation"]["nodes"] == rec.nodes


def test_a_deadline_nothing_can_meet_stops_after_min_trials() -> None:
    # Steps' fastest machine (32 GPUs) takes about 1125 s: a 60 s deadline is out of reach,
    # which the model says before any trial; forced, the search stops after min_trials.
    hopeless = {"max_runtime_s": 60, "providers": ["gcp"], "max_trials": 20, "min_trials": 6}
    with pytest.raises(HopelessJobError, match="the deadline .* is 1m00s"):
        search(Steps(), "cost", **hopeless, cost_aware=False)  # type: ignore[arg-type]
    result = search(Steps(), "cost", force=True, **hopeless, cost_aware=False)  # type: ignore[arg-type]
    assert result.recommendation is None
    assert result.trials_used == 6
    assert result.stopped_because == "no untried configuration is likely to meet the constraint"
    reachable = search(
        Steps(),
        "cost",
        max_runtime_s=3 * 3600,
        providers=["gcp"],
        max_trials=30,
        min_trials=4,
        cost_aware=False,
    )
    assert reachable.stopped_because == (
        "stop rule: the best expected improvement is below 10% of the best"
        f" after {reachable.trials_used} trials"
    )


def test_a_store_written_before_a_spec_field_existed_resumes(tmp_path: Path) -> None:
    store = tmp_path / "search.sqlite"
    args = {"max_runtime_s": 3 * 3600, "providers": ["gcp"], "max_trials": 4, "store": store}
    first = search(Steps(), "cost", **args, cost_aware=False)  # type: ignore[arg-type]
    # As an earlier version wrote it: no stop.min_chance in the stored specification.
    with sqlite3.connect(store) as conn:
        (text,) = conn.execute("SELECT spec FROM search").fetchone()
        older = json.loads(text)
        del older["stop"]["min_chance"]
        conn.execute("UPDATE search SET spec = ?", (json.dumps(older),))
    again = search(Steps(), "cost", **args, cost_aware=False)  # type: ignore[arg-type]
    assert again.recommendation == first.recommendation
    assert again.trials_used == first.trials_used
    # A real difference is still refused, and named.
    with pytest.raises(StoreError, match="objective.max_runtime_s"):
        search(Steps(), "cost", **{**args, "max_runtime_s": 2 * 3600}, cost_aware=False)  # type: ignore[arg-type]


class BarrierProvider(SimulatedProvider):
    """The first ``parties`` trials wait for each other: unless they run at once, the barrier
    breaks. Later ones start one by one, as trials in flight finish (the search refills)."""

    def __init__(self, parties: int) -> None:
        super().__init__(0)
        self.parties = parties
        self.barrier = threading.Barrier(parties, timeout=10)
        self.keys: list[str] = []
        self._lock = threading.Lock()

    def execute(
        self,
        candidate: Candidate,
        instances: Sequence[Instance],
        workload: Workload,
        timeout_s: float,
    ) -> TrialRun:
        with self._lock:
            self.keys.append(candidate.key)
            first = len(self.keys) <= self.parties
        if first:
            self.barrier.wait()
        return super().execute(candidate, instances, workload, timeout_s)


def test_parallel_runs_k_distinct_trials_at_once() -> None:
    provider = BarrierProvider(3)
    result = search(
        Steps(),
        "cost",
        provider=provider,
        providers=["gcp"],
        parallel=3,
        max_trials=9,
        ei_fraction=0,
    )
    assert result.trials_used == 9
    assert len(set(provider.keys)) == 9
    assert provider.list_launched({}) == []


class SmallGpusFail(SimulatedProvider):
    """Every GPU under 40 GiB runs out of memory (the cheap ones)."""

    def execute(
        self,
        candidate: Candidate,
        instances: Sequence[Instance],
        workload: Workload,
        timeout_s: float,
    ) -> TrialRun:
        if candidate.offering.gpu_memory_gib < 40:
            return TrialRun(TrialResult("oom", None, message="out of memory"), 60.0, 60.0, 10.0)
        return super().execute(candidate, instances, workload, timeout_s)


def test_failed_trials_are_never_recommended() -> None:
    result = search(
        Steps(),
        "cost",
        provider=SmallGpusFail(1),
        providers=["aws"],
        max_trials=12,
        cost_aware=False,
    )
    trials = result.trials
    assert (trials["status"] == "oom").any()
    rec = result.recommendation
    assert rec is not None and rec.gpu in {"A100", "A100-80GB", "H100", "H200", "L40S"}
    oom_ids = set(trials.loc[trials["status"] == "oom", "trial_id"])
    assert all(c.trial_id not in oom_ids for c in (rec, *result.runners_up))


class InterruptedProvider(SimulatedProvider):
    """The user presses Ctrl-C while the fifth trial runs."""

    def __init__(self, after: int) -> None:
        super().__init__(0)
        self.after = after

    def execute(
        self,
        candidate: Candidate,
        instances: Sequence[Instance],
        workload: Workload,
        timeout_s: float,
    ) -> TrialRun:
        if self.after == 0:
            raise KeyboardInterrupt
        self.after -= 1
        return super().execute(candidate, instances, workload, timeout_s)


def test_ctrl_c_terminates_and_marks_interrupted(tmp_path: Path) -> None:
    provider = InterruptedProvider(4)
    store = tmp_path / "s.sqlite"
    with pytest.raises(SearchInterrupted) as caught:
        search(
            Steps(),
            provider=provider,
            providers=["aws"],
            store=store,
            ei_fraction=0,
            cost_aware=False,
        )
    assert caught.value.exit_code == 130
    with TrialStore(store, create=False) as opened:
        assert opened.status() == "interrupted"
        assert len(opened.finished_trials()) == 4
        assert opened.live_instances() == []
        assert len(opened.instances()) > 0
    assert provider._running == {}


def test_stored_result_is_the_workloads_result_with_per_layer_times(tmp_path: Path) -> None:
    """Reports read the workload's result JSON from the store: layers and breakdown included."""
    from cherrypick.store import TrialStore

    spec = tmp_path / "s.yaml"
    spec.write_text(
        "workload: {name: cnn, params: {model: alexnet, epochs: 1, dataset_size: 10000}}\n"
        "budget: {max_trials: 3}\n"
        "stop: {cost_aware: false}\n"
    )
    store = tmp_path / "s.sqlite"
    assert main(["search", str(spec), "--dry-run", "--quiet", "--store", str(store)]) == 0
    with TrialStore(store, create=False) as opened:
        ok = [t for t in opened.finished_trials() if t.status == "ok"]
    assert ok
    result = ok[0].result
    assert result is not None
    assert [layer["name"] for layer in result["layers"]][:2] == ["conv1", "conv2"]
    assert set(result["breakdown_ms"]) >= {"forward", "backward", "communication"}
    assert result["trial_seconds"]["billed_s"] >= 60
