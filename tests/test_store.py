"""The trial store on real SQLite files: round trips, resume checks, errors, threads."""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cherrypick.providers.base import Instance

from cherrypick.errors import InputError, StoreError
from cherrypick.store import SCHEMA_VERSION, TrialStore
from cherrypick.trials import CandidateRecord

SPEC: dict[str, Any] = {
    "workload": {"name": "resnet50", "batch_size": 64},
    "objective": {"kind": "cost", "max_runtime_s": 36000.0},
    "providers": ["aws", "gcp"],
}


def candidate(i: int) -> CandidateRecord:
    return CandidateRecord(
        provider="aws",
        region="us-east-1",
        instance_type=f"p3.{2**i}xlarge",
        gpu="V100",
        gpus_per_node=2**i,
        nodes=1,
        price_per_hour=3.06 * 2**i,
    )


def write_trial(store: TrialStore, i: int, status: str = "ok") -> None:
    store.start_trial(i, f"aws/us-east-1/p3.{i}x1", candidate(i))
    ok = status == "ok"
    store.finish_trial(
        i,
        status,
        runtime_s=1000.0 * (i + 1) if ok else None,
        cost_usd=2.5 * (i + 1) if ok else None,
        search_cost_usd=0.1 * (i + 1),
        result={"images_per_s": 100.0 + i, "layers": [{"name": "conv1", "forward_ms": 1.5}]},
        message="" if ok else "CUDA out of memory",
    )


def test_trials_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "search.db"
    with TrialStore(path) as store:
        store.begin(SPEC, seed=7)
        write_trial(store, 0)
        write_trial(store, 1, status="oom")
    with TrialStore(path, create=False) as store:
        assert store.spec() == SPEC
        assert store.seed() == 7
        assert store.status() == "running"
        rows = store.trials()
        assert [r.trial_id for r in rows] == [0, 1]
        first, second = rows
        assert first.candidate == candidate(0)
        assert first.candidate_key == "aws/us-east-1/p3.0x1"
        assert (first.status, first.runtime_s, first.cost_usd) == ("ok", 1000.0, 2.5)
        assert first.search_cost_usd == pytest.approx(0.1)
        assert first.result is not None and first.result["layers"][0]["name"] == "conv1"
        assert first.finished_at is not None and first.finished_at >= first.started_at
        assert (second.status, second.runtime_s, second.cost_usd) == ("oom", None, None)
        assert second.message == "CUDA out of memory"
        assert store.next_trial_id() == 2


def test_trial_started_but_not_finished_is_unfinished(tmp_path: Path) -> None:
    path = tmp_path / "search.db"
    with TrialStore(path) as store:
        store.begin(SPEC, seed=1)
        write_trial(store, 0)
        store.start_trial(1, "k1", candidate(1))
    with TrialStore(path) as store:
        assert [r.trial_id for r in store.finished_trials()] == [0]
        (inflight,) = store.unfinished_trials()
        assert (inflight.trial_id, inflight.status, inflight.finished) == (1, "running", False)
        assert inflight.finished_at is None
        assert store.next_trial_id() == 2
        store.start_trial(1, "k1", candidate(1))  # a resumed search re-runs it under its id
        store.finish_trial(1, "ok", 10.0, 1.0, 0.2, None)
        assert store.unfinished_trials() == []
        with pytest.raises(StoreError, match="trial 1 already finished"):
            store.start_trial(1, "k1", candidate(1))


def test_finishing_a_trial_twice_or_never_started_is_refused(tmp_path: Path) -> None:
    with TrialStore(tmp_path / "s.db") as store:
        write_trial(store, 0)
        with pytest.raises(StoreError, match="trial 0 is not running"):
            store.finish_trial(0, "error", None, None, None, None)
        with pytest.raises(StoreError, match="trial 5 is not running"):
            store.finish_trial(5, "error", None, None, None, None)
        store.start_trial(1, "k", candidate(1))
        with pytest.raises(ValueError, match="runtime_s and cost_usd"):
            store.finish_trial(1, "ok", None, None, None, None)
        with pytest.raises(ValueError, match="trial status"):
            store.finish_trial(1, "exploded", None, None, None, None)


def test_search_result_and_status(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with TrialStore(path) as store:
        assert not store.has_search()
        with pytest.raises(StoreError, match="no search"):
            store.spec()
        store.begin(SPEC, seed=3)
        with pytest.raises(StoreError, match="already holds a search"):
            store.begin(SPEC, seed=3)
        assert store.result() is None
        store.finish("finished", {"recommendation": {"trial_id": 4}, "best": np.float64(1.5)})
    with TrialStore(path) as store:
        assert store.status() == "finished"
        assert store.result() == {"recommendation": {"trial_id": 4}, "best": 1.5}
        store.resume(SPEC)
        assert store.status() == "running"
        with pytest.raises(ValueError, match="search status"):
            store.finish("done", None)


def test_resuming_with_another_spec_names_the_first_difference(tmp_path: Path) -> None:
    with TrialStore(tmp_path / "s.db") as store:
        store.begin(SPEC, seed=3)
        same = {**SPEC, "providers": ("aws", "gcp")}  # a tuple is the same JSON as the list
        store.check_same_spec(same)
        changed = {**SPEC, "objective": {"kind": "cost", "max_runtime_s": 7200.0}}
        with pytest.raises(StoreError, match=r"first difference: 'objective\.max_runtime_s'"):
            store.check_same_spec(changed)
        with pytest.raises(StoreError, match=r"'providers\[1\]'"):
            store.resume({**SPEC, "providers": ["aws", "azure"]})
        with pytest.raises(StoreError, match="'extra'"):
            store.check_same_spec({**SPEC, "extra": 1})
        assert store.status() == "running"


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("these are not the trials you are looking for\n" * 100)
    with pytest.raises(StoreError, match="not a cherrypick trial store"):
        TrialStore(text)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(StoreError, match="SQLite database but not a cherrypick trial store"):
        TrialStore(other)
    with sqlite3.connect(other) as conn:  # and we left the foreign database as it was
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_store_from_a_newer_cherrypick_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    TrialStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="newer cherrypick.*schema 99"):
        TrialStore(path)


def test_missing_or_unwritable_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no trial store at"):
        TrialStore(tmp_path / "absent.db", create=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open trial store"):
        TrialStore(blocker / "s.db")
    nested = tmp_path / "a" / "b" / "s.db"
    TrialStore(nested).close()  # missing folders are created
    assert nested.is_file()


def test_instances_follow_their_state(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with TrialStore(path) as store:
        store.start_trial(0, "k0", candidate(0))
        launched = [
            Instance(provider="aws", instance_id=f"i-{n}", region="us-east-1") for n in "ab"
        ]
        store.record_instances(0, launched)
        store.record_instances(0, launched, "running")
        store.start_trial(1, "k1", candidate(1))
        store.record_instances(1, [{"provider": "gcp", "instance_id": "vm-1", "region": "eu"}])
        assert store.set_instance_state("i-a", "terminated")
        assert not store.set_instance_state("i-never-seen", "terminated")
        with pytest.raises(ValueError, match="instance state"):
            store.set_instance_state("i-b", "sleeping")
        with pytest.raises(StoreError):  # instances belong to a started trial
            store.record_instances(9, launched)
    with TrialStore(path) as store:
        live = store.live_instances()
        assert [(i.trial_id, i.instance_id, i.state) for i in live] == [
            (0, "i-b", "running"),
            (1, "vm-1", "launching"),
        ]
        assert live[1].provider == "gcp" and live[1].region == "eu"
        assert len(store.instances()) == 3


def test_worker_threads_share_one_store(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with TrialStore(path) as store:
        store.begin(SPEC, seed=0)

        def worker(n: int) -> None:
            for i in range(5):
                write_trial(store, 10 * n + i)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with TrialStore(path) as store:
        assert sorted(r.trial_id for r in store.finished_trials()) == sorted(
            10 * n + i for n in range(4) for i in range(5)
        )


#: The schema of version 1 as cherrypick 0.1 wrote it (before trials on real machines).
_SCHEMA_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE search (
    id INTEGER PRIMARY KEY CHECK (id = 1), created_at REAL NOT NULL, updated_at REAL NOT NULL,
    spec TEXT NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted', 'failed')),
    result TEXT
);
CREATE TABLE trials (
    trial_id INTEGER PRIMARY KEY, candidate_key TEXT NOT NULL, candidate TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('running', 'ok', 'oom', 'error', 'timeout', 'cancelled')),
    runtime_s REAL, cost_usd REAL, search_cost_usd REAL, result TEXT,
    message TEXT NOT NULL DEFAULT '', started_at REAL NOT NULL, finished_at REAL
);
CREATE TABLE instances (
    provider TEXT NOT NULL, instance_id TEXT NOT NULL,
    trial_id INTEGER NOT NULL REFERENCES trials (trial_id), region TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('launching', 'running', 'terminated', 'unknown')),
    updated_at REAL NOT NULL, PRIMARY KEY (provider, instance_id)
);
"""


def test_a_version_1_store_is_upgraded_in_place_and_keeps_its_trials(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    record = candidate(0)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(_SCHEMA_V1)
        conn.execute("INSERT INTO search VALUES (1, 1.0, 1.0, '{\"a\": 1}', 3, 'running', NULL)")
        conn.execute(
            "INSERT INTO trials VALUES (0, 'k', ?, 'ok', 10.0, 1.0, 0.5, '{}', '', 1.0, 2.0)",
            (json.dumps(record.to_json()),),
        )
        conn.execute("INSERT INTO instances VALUES ('aws', 'i-1', 0, 'r', 'running', 1.0)")
    with TrialStore(path, create=False) as store:
        assert store.spec() == {"a": 1} and store.seed() == 3
        (row,) = store.trials()
        assert (row.trial_id, row.status, row.runtime_s) == (0, "ok", 10.0)
        assert [i.instance_id for i in store.live_instances()] == ["i-1"]
        assert store.replay_order() == [(0, None, None)]
        # What version 2 adds works on the upgraded file: a new status, launches, reservations.
        store.start_trial(1, "k2", record, asked_after=1)
        store.finish_trial(1, "unavailable", None, None, 0.0, None, "no capacity")
        store.record_launch("c-1", 1, "aws", "r", None, {"cherrypick-trial": "1"})
        assert store.reserve_hosts("ssh", ["h"], 1) and store.reservations() == {"h": 1}
        store.heartbeat("me:1")
        assert store.last_heartbeat()[0] == "me:1"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
