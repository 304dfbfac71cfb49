"""What the trial store keeps: the SQL schema, the row types and the JSON helpers.

Split from :mod:`cherrypick.store` so the store class reads on its own; import the public names
from there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cherrypick.trials import CandidateRecord, TrialStatus

SCHEMA_VERSION = 2
SEARCH_STATUSES = ("running", "finished", "interrupted", "failed")
FINISHED_STATUSES = tuple(s.value for s in TrialStatus if s != TrialStatus.RUNNING)
INSTANCE_STATES = ("launching", "running", "terminated", "unknown")
LAUNCH_STATES = ("intent", "launched", "failed", "terminated")


def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _trials_table(name: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {name} (
    trial_id INTEGER PRIMARY KEY,
    candidate_key TEXT NOT NULL,
    candidate TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', {_in(FINISHED_STATUSES)})),
    runtime_s REAL,
    cost_usd REAL,
    search_cost_usd REAL,
    result TEXT,
    message TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    finished_at REAL,
    asked_after INTEGER,
    tell_seq INTEGER
)"""


_SCHEMA_2_TABLES = f"""
CREATE TABLE IF NOT EXISTS launches (
    cluster_name TEXT PRIMARY KEY,
    trial_id INTEGER NOT NULL REFERENCES trials (trial_id),
    provider TEXT NOT NULL,
    region TEXT NOT NULL,
    zone TEXT,
    tags TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({_in(LAUNCH_STATES)})),
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    host TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    trial_id INTEGER NOT NULL,
    reserved_at REAL NOT NULL
);
"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version SELECT {SCHEMA_VERSION} WHERE NOT EXISTS (SELECT 1 FROM schema_version);
CREATE TABLE IF NOT EXISTS search (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    spec TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({_in(SEARCH_STATUSES)})),
    result TEXT,
    heartbeat_at REAL,
    owner TEXT
);
{_trials_table("trials")};
CREATE TABLE IF NOT EXISTS instances (
    provider TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    trial_id INTEGER NOT NULL REFERENCES trials (trial_id),
    region TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({_in(INSTANCE_STATES)})),
    updated_at REAL NOT NULL,
    node_rank INTEGER NOT NULL DEFAULT 0,
    launched_at REAL,
    terminated_at REAL,
    info TEXT,
    PRIMARY KEY (provider, instance_id)
);
{_SCHEMA_2_TABLES}"""

_V1_TRIAL_COLUMNS = (
    "trial_id, candidate_key, candidate, status, runtime_s, cost_usd, search_cost_usd, result,"
    " message, started_at, finished_at"
)
#: How a store of an older schema version is upgraded in place (run with foreign keys off), so
#: a search begun by an older cherrypick resumes with this one. Version 1 -> 2: the trials table
#: is rebuilt (a CHECK constraint cannot be altered: trial status ``unavailable`` is new).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE search ADD COLUMN heartbeat_at REAL",
        "ALTER TABLE search ADD COLUMN owner TEXT",
        _trials_table("trials_v2"),
        f"INSERT INTO trials_v2 ({_V1_TRIAL_COLUMNS}) SELECT {_V1_TRIAL_COLUMNS} FROM trials",
        "DROP TABLE trials",
        "ALTER TABLE trials_v2 RENAME TO trials",
        "ALTER TABLE instances ADD COLUMN node_rank INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE instances ADD COLUMN launched_at REAL",
        "ALTER TABLE instances ADD COLUMN terminated_at REAL",
        "ALTER TABLE instances ADD COLUMN info TEXT",
        *filter(str.strip, _SCHEMA_2_TABLES.split(";")),
    ),
}

TRIAL_COLUMNS = (
    "trial_id, candidate_key, candidate, status, runtime_s, cost_usd, search_cost_usd, result,"
    " message, started_at, finished_at"
)
INSTANCE_COLUMNS = (
    "trial_id, instance_id, provider, region, state, updated_at, node_rank, launched_at,"
    " terminated_at, info"
)
LAUNCH_COLUMNS = "cluster_name, trial_id, provider, region, zone, tags, state, updated_at"


@dataclass(frozen=True)
class TrialRow:
    """One trial as the store keeps it, and what a search's result and reports are made of:
    what ran (``candidate``), how it ended, what it measured (``runtime_s``, the projected full
    job, and its cost) and what the search paid for it (``search_cost_usd``)."""

    trial_id: int
    candidate_key: str
    candidate: CandidateRecord
    status: TrialStatus
    runtime_s: float | None
    cost_usd: float | None
    search_cost_usd: float | None
    result: dict[str, Any] | None
    message: str
    started_at: float
    finished_at: float | None

    @property
    def finished(self) -> bool:
        return self.status != TrialStatus.RUNNING

    @classmethod
    def from_sql(cls, r: Sequence[Any]) -> TrialRow:
        """From a row selected as ``TRIAL_COLUMNS``."""
        return cls(
            trial_id=r[0],
            candidate_key=r[1],
            candidate=CandidateRecord.from_json(json.loads(r[2])),
            status=TrialStatus(r[3]),
            runtime_s=r[4],
            cost_usd=r[5],
            search_cost_usd=r[6],
            result=None if r[7] is None else json.loads(r[7]),
            message=r[8],
            started_at=r[9],
            finished_at=r[10],
        )


@dataclass(frozen=True)
class InstanceRow:
    """One machine a trial launched, with the last state the search saw."""

    trial_id: int
    instance_id: str
    provider: str
    region: str
    state: str
    updated_at: float
    node_rank: int = 0
    launched_at: float | None = None
    terminated_at: float | None = None
    info: Mapping[str, Any] | None = None

    @classmethod
    def from_sql(cls, r: Sequence[Any]) -> InstanceRow:
        """From a row selected as ``INSTANCE_COLUMNS``."""
        info = None if r[9] is None else json.loads(r[9])
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], info)


@dataclass(frozen=True)
class LaunchRow:
    """A cluster a trial launched or meant to launch: the intent is written before the provider
    is asked, so a crash between the two still leaves the store knowing what to look for (by
    ``tags``)."""

    cluster_name: str
    trial_id: int
    provider: str
    region: str
    zone: str | None
    tags: Mapping[str, str]
    state: str
    updated_at: float

    @classmethod
    def from_sql(cls, r: Sequence[Any]) -> LaunchRow:
        return cls(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7])


class InstanceLike(Protocol):
    """What the store needs of an instance; ``cherrypick.providers.base.Instance`` fits."""

    @property
    def instance_id(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def region(self) -> str: ...


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays reach us from strategies and workloads; store them as plain JSON.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def first_difference(old: Any, new: Any, where: str = "") -> str | None:
    """The dotted path of the first key where two JSON values differ, or None if equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            path = f"{where}.{key}" if where else key
            if key not in old or key not in new:
                return path
            found = first_difference(old[key], new[key], path)
            if found is not None:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found = first_difference(a, b, f"{where}[{i}]")
            if found is not None:
                return found
        return None
    return None if old == new else (where or "(the whole spec)")


def instance_fields(instance: InstanceLike | Mapping[str, Any]) -> tuple[str, str, str]:
    if isinstance(instance, Mapping):
        return str(instance["provider"]), str(instance["instance_id"]), str(instance["region"])
    return instance.provider, instance.instance_id, instance.region
