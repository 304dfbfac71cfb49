"""A process killed with SIGKILL loses at most its in-flight trial; the rest is intact."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from cherrypick.errors import StoreError
from cherrypick.store import TrialStore
from cherrypick.trials import CandidateRecord

ROOT = Path(__file__).resolve().parents[1]

# Writes `count` trials (0 for: forever), then starts one more with a live machine and waits.
WRITER = textwrap.dedent(
    """
    import sys, time
    from cherrypick.store import TrialStore
    from cherrypick.trials import CandidateRecord

    def record(i):
        return CandidateRecord("aws", "us-east-1", "p3.2xlarge", "V100", 1, i + 1, 3.06 * (i + 1))

    path, count = sys.argv[1], int(sys.argv[2])
    store = TrialStore(path)
    store.begin({"objective": {"kind": "cost", "max_runtime_s": None}}, seed=11)
    i = 0
    while count == 0 or i < count:
        store.start_trial(i, f"key{i}", record(i))
        store.finish_trial(i, "ok", 60.0 * (i + 1), 1.0 + i, 0.01 * i, {"step": i}, f"trial {i}")
        i += 1
    store.start_trial(i, f"key{i}", record(i))
    live = {"provider": "aws", "instance_id": "i-live", "region": "r"}
    store.record_instances(i, [live], "running")
    print("ready", flush=True)
    time.sleep(600)
    """
)


def start_writer(tmp_path: Path, count: int) -> tuple[subprocess.Popen[str], Path]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    path = tmp_path / "search.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(path), str(count)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    return child, path


def record(i: int) -> CandidateRecord:
    return CandidateRecord("aws", "us-east-1", "p3.2xlarge", "V100", 1, i + 1, 3.06 * (i + 1))


def kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL


def assert_trial_intact(store: TrialStore, i: int) -> None:
    row = store.trials()[i]
    assert (row.trial_id, row.candidate_key, row.candidate, row.status) == (
        i,
        f"key{i}",
        record(i),
        "ok",
    )
    assert (row.runtime_s, row.cost_usd, row.result, row.message) == (
        60.0 * (i + 1),
        1.0 + i,
        {"step": i},
        f"trial {i}",
    )


def test_sigkill_after_k_trials_keeps_them_and_the_in_flight_one_is_unfinished(
    tmp_path: Path,
) -> None:
    child, path = start_writer(tmp_path, count=5)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    kill(child)
    with TrialStore(path, create=False) as store:
        assert store.seed() == 11 and store.status() == "running"
        assert [r.trial_id for r in store.finished_trials()] == [0, 1, 2, 3, 4]
        for i in range(5):
            assert_trial_intact(store, i)
        assert [r.trial_id for r in store.unfinished_trials()] == [5]
        assert [(i.trial_id, i.instance_id) for i in store.live_instances()] == [(5, "i-live")]
        assert store.next_trial_id() == 6


def test_sigkill_in_the_middle_of_writes_leaves_a_consistent_store(tmp_path: Path) -> None:
    child, path = start_writer(tmp_path, count=0)
    try:
        deadline = time.monotonic() + 60
        while trials_visible(path) < 20:  # let it write a while, then kill it wherever it is
            assert time.monotonic() < deadline, "the writer never got going"
            time.sleep(0.05)
    finally:
        kill(child)
    with TrialStore(path, create=False) as store:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = store.trials()
        assert [r.trial_id for r in rows] == list(range(len(rows)))
        assert len(rows) >= 20
        for row in rows[:-1]:
            assert_trial_intact(store, row.trial_id)
        assert rows[-1].status in ("ok", "running")  # at most the last one was in flight
        assert len(store.unfinished_trials()) <= 1


def trials_visible(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with TrialStore(path, create=False) as store:
            return store.next_trial_id()
    except StoreError:  # the writer may still be creating the schema
        return 0
