"""A second Ctrl-C while a stopped search tears down does not skip the teardown: it says what is
still running and how to clean it up, and the search still ends with its machines terminated."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from cherrypick.store import TrialStore

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: In the subprocess: a simulator whose trials take seconds and do not notice a cancel (as a
#: provider stuck in a cloud API call would), so a stopped search has to wait for them.
CODE = """
import sys, time
from cherrypick.providers.base import provider_registry
from cherrypick.providers.simulated import SimulatedProvider

class Stuck(SimulatedProvider):
    def execute(self, candidate, instances, workload, timeout_s):
        print("trial started", file=sys.stderr, flush=True)
        time.sleep(4)
        return super().execute(candidate, instances, workload, timeout_s)

provider_registry.register("simulated", Stuck)
from cherrypick.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_a_second_interrupt_during_teardown_says_what_runs_and_waits(tmp_path: Path) -> None:
    spec = {
        "workload": {"name": "cnn", "params": {"model": "alexnet", "dataset_size": 13000}},
        "filters": {"providers": ["aws"], "gpus": ["A10G"], "max_nodes": 1},
        "budget": {"max_trials": 4},
    }
    path = tmp_path / "search.yaml"
    path.write_text(json.dumps(spec))
    store = tmp_path / "s.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-c", CODE, "search", str(path), "--dry-run", "--store", str(store)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    first = ""
    while "trial started" not in first:  # after what the search expects, before the trial
        first = process.stderr.readline()
        assert first, "the search ended before its first trial"
    process.send_signal(signal.SIGINT)
    time.sleep(1.5)  # the first stops the search; its trial is still in flight
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "terminating the machines of the trials in flight" in err
    assert f"cherrypick cleanup --store {store}" in err
    assert "Traceback" not in err
    with TrialStore(store, create=False) as opened:
        assert opened.status() == "interrupted"
        assert opened.live_instances() == []  # the teardown was not skipped
        (trial,) = opened.trials()
        # It ended while the search waited for it: what it measured is kept for --resume.
        assert trial.status == "ok" and trial.runtime_s is not None
