"""A search killed with SIGKILL resumes to the same recommendation, re-running at most the trial
that was in flight. The search runs in a subprocess with a slow registered workload, so the kill
lands between trials' starts and finishes as it would on a real cloud."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cherrypick.workloads.base import workload_registry

from cherrypick.cli import main
from cherrypick.errors import InputError, NotAStoreError
from cherrypick.store import TrialStore

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
KILL_AFTER = 4


def _cli(args: list[str]) -> list[str]:
    """A ``cherrypick`` command line whose process also knows the slow workload."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        " from cherrypick.workloads.base import workload_registry;"
        " from test_search_resume import Slow;"
        " workload_registry.register('slow', Slow);"
        " from cherrypick.cli import main; raise SystemExit(main(sys.argv[2:]))"
    )
    return [sys.executable, "-c", code, str(HERE), *args]


class Slow:
    """Registered as a workload factory in the subprocess: a CNN job whose trials take 0.1 s."""

    def __new__(cls, params: dict[str, object]) -> object:
        from cherrypick.workloads.cnn.workload import CNNWorkload

        class _Slow(CNNWorkload):
            def simulation_profile(self):  # type: ignore[no-untyped-def]
                time.sleep(0.1)
                return super().simulation_profile()

        return _Slow(params)


def _spec(tmp_path: Path, parallel: int = 1) -> Path:
    spec = {
        "parallel": parallel,
        "workload": {
            "name": "slow",
            "params": {"model": "vgg11", "epochs": 30, "dataset_size": 13000, "classes": 10},
        },
        "objective": {"kind": "cost", "max_runtime_s": 1500},
        "filters": {"providers": ["gcp"], "max_nodes": 2},
        "budget": {"max_trials": 10},
        "stop": {"ei_fraction": 0.02, "cost_aware": False},  # trials run until killed
        "seed": 3,
    }
    path = tmp_path / "search.yaml"
    path.write_text(json.dumps(spec))
    return path


def _run(args: list[str]) -> dict[str, object]:
    done = subprocess.run(_cli(args), cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _finished(store: Path) -> int:
    try:
        with TrialStore(store, create=False) as opened:
            return len(opened.finished_trials()) if opened.has_search() else 0
    except (InputError, NotAStoreError):
        return 0  # not there yet, or created this instant and still empty


def _kill_after(args: list[str], store: Path, trials: int) -> None:
    process = subprocess.Popen(
        _cli(args), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while _finished(store) < trials and time.monotonic() < deadline:
            assert process.poll() is None, "the search ended before it could be killed"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()


def _run_here(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, object]:
    # Registered for this test only: the registry has no public way to forget a name.
    monkeypatch.setitem(workload_registry._factories, "slow", Slow)
    assert main(args) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


@pytest.mark.parametrize("parallel", [1, 2])
def test_resume_after_sigkill_matches_an_uninterrupted_run(
    parallel: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With 2 in flight the search refills as each ends: the resumed run asks and tells in the
    # order the killed one did (on the simulated clock), so it proposes the same trials.
    spec = _spec(tmp_path, parallel)
    whole_store = str(tmp_path / "whole.sqlite")
    whole = _run_here(
        ["search", str(spec), "--dry-run", "--json", "--quiet", "--store", whole_store],
        capsys,
        monkeypatch,
    )

    store = tmp_path / "killed.sqlite"
    _kill_after(
        ["search", str(spec), "--dry-run", "--json", "--quiet", "--store", str(store)],
        store,
        KILL_AFTER,
    )
    with TrialStore(store, create=False) as opened:
        assert opened.status() == "running"  # killed: nobody closed it
        before = {r.trial_id: r for r in opened.finished_trials()}
        in_flight = opened.unfinished_trials()
    assert len(before) >= KILL_AFTER and len(in_flight) <= parallel

    resumed = _run(["search", "--resume", str(store), "--json", "--quiet"])
    assert resumed["recommendation"] == whole["recommendation"]
    assert resumed["trials_used"] == whole["trials_used"]
    with TrialStore(store, create=False) as opened:
        after = {r.trial_id: r for r in opened.finished_trials()}
        assert opened.status() == "finished" and opened.live_instances() == []
    with TrialStore(tmp_path / "whole.sqlite", create=False) as opened:
        keys = [r.candidate_key for r in opened.trials()]
    assert [after[t].candidate_key for t in sorted(after)] == keys
    # Finished trials were replayed, not re-run: their rows are untouched.
    assert all(after[t].started_at == row.started_at for t, row in before.items())
