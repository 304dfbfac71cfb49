"""The trial store: one SQLite file per search, written as trials finish.

A search writes its specification once (:meth:`TrialStore.begin`), then one row per trial: the row
is created when the trial starts (status ``running``) and completed when it finishes. Every write is
its own committed transaction, so a killed process loses at most the trials in flight; those are the
rows still ``running`` when the store is reopened (:meth:`TrialStore.unfinished_trials`). The store
keeps observations only: a resumed search replays :meth:`TrialStore.finished_trials` into its
strategy's ``tell()`` and never unpickles a model.

The ``instances`` table follows every machine a trial launched, so after a crash
:meth:`TrialStore.live_instances` says what may still be running (and billing).

Resuming a killed search, in outline::

    with TrialStore(path, create=False) as store:
        store.resume(spec)                       # StoreError if the spec changed
        seed = store.seed()
        for row in store.finished_trials():      # replay observations into strategy.tell()
            ...
        for row in store.unfinished_trials():    # re-run under the same trial_id
            ...
        for machine in store.live_instances():   # terminate what the crash left running
            ...

Safe to share between the search's threads: one connection guarded by a lock. Readers in other
processes (``cherrypick report`` on a running search) work thanks to WAL mode.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from cherrypick.errors import InputError, NotAStoreError, StoreError, ValidationError
from cherrypick.store.schema import (
    FINISHED_STATUSES,
    INSTANCE_COLUMNS,
    INSTANCE_STATES,
    LAUNCH_COLUMNS,
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    SEARCH_STATUSES,
    TRIAL_COLUMNS,
    InstanceLike,
    InstanceRow,
    LaunchRow,
    TrialRow,
    dumps,
    first_difference,
    instance_fields,
)
from cherrypick.trials import CandidateRecord

__all__ = [
    "FINISHED_STATUSES",
    "INSTANCE_STATES",
    "SCHEMA_VERSION",
    "SEARCH_STATUSES",
    "InstanceLike",
    "InstanceRow",
    "LaunchRow",
    "TrialRow",
    "TrialStore",
]


_TRIAL_COLUMN_NAMES = [c.strip() for c in TRIAL_COLUMNS.split(",")]


def _instance_extras(instance: InstanceLike | Mapping[str, Any]) -> tuple[int, str | None]:
    """An instance's node rank and what reaches it (addresses, port, user, tags), as JSON."""
    if isinstance(instance, Mapping):
        return int(instance.get("node_rank", 0)), None
    rank = int(getattr(instance, "node_rank", 0))
    fields = ("internal_ip", "external_ip", "ssh_port", "ssh_user", "tags")
    info = {f: getattr(instance, f) for f in fields if hasattr(instance, f)}
    if "tags" in info:
        info["tags"] = dict(info["tags"])
    return rank, dumps(info) if info else None


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


class TrialStore:
    """A search's trials in one SQLite file; use as a context manager.

    ``create=False`` opens an existing store only (``--resume``, ``report``): a missing file is an
    :class:`InputError`. A file that is not a cherrypick store (an empty one too, unless
    creating), a store written by a newer cherrypick, or a path that cannot be written is a
    :class:`StoreError`; stored JSON that no longer parses is a :class:`ValidationError` naming
    its column (and trial).
    """

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise InputError(f"no trial store at {self.path}")
        self._lock = threading.Lock()
        self._conn = self._connect()
        try:
            self._prepare(create)
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot open trial store {self.path}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we open and commit every transaction ourselves.
            return sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open trial store {self.path}: {exc}") from exc

    def _prepare(self, create: bool) -> None:
        try:
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.OperationalError:
            raise  # locked, unreadable: not a verdict on the file's content
        except sqlite3.DatabaseError as exc:
            raise NotAStoreError(f"{self.path} is not a cherrypick trial store ({exc})") from exc
        if tables and "schema_version" not in tables:
            raise NotAStoreError(
                f"{self.path} is an SQLite database but not a cherrypick trial store"
            )
        if not tables and not create:
            # An empty file, or one a search is creating now: writing our schema into it would
            # make a read-only command change the user's file.
            raise NotAStoreError(f"{self.path} is not a cherrypick trial store (it is empty)")
        if tables:
            self._check_version()
        self._conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed trial survives a power cut too, not only a killed process.
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        if not tables:
            with self._write() as conn:
                for statement in filter(str.strip, SCHEMA.split(";")):
                    conn.execute(statement)

    def _check_version(self) -> None:
        version = self._conn.execute("SELECT version FROM schema_version").fetchone()
        found = None if version is None else int(version[0])
        if found is not None and found > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer cherrypick (store schema {found}, this"
                f" version reads {SCHEMA_VERSION}); upgrade cherrypick"
            )
        if found in MIGRATIONS:
            with self._write() as conn:
                for statement in MIGRATIONS[found]:
                    conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        elif found != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has an unknown store schema version {found}")

    # -- plumbing ---------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> TrialStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed (and synced) before returning."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write trial store {self.path}: {exc}") from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._conn.execute(sql, params))
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read trial store {self.path}: {exc}") from exc

    # -- the search -------------------------------------------------------------------------------

    def has_search(self) -> bool:
        return bool(self._read("SELECT 1 FROM search"))

    def begin(self, spec: Mapping[str, Any], seed: int) -> None:
        """Record a new search; a store holds one search only."""
        now = time.time()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM search").fetchone():
                raise StoreError(f"{self.path} already holds a search; resume it or use a new file")
            conn.execute(
                "INSERT INTO search (id, created_at, updated_at, spec, seed, status)"
                " VALUES (1, ?, ?, ?, ?, 'running')",
                (now, now, dumps(spec), int(seed)),
            )

    def _search_field(self, column: str) -> Any:
        rows = self._read(f"SELECT {column} FROM search")
        if not rows:
            raise StoreError(f"{self.path} holds no search yet")
        return rows[0][0]

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self._loads(self._search_field("spec"), "search.spec")
        return spec

    def seed(self) -> int:
        return int(self._search_field("seed"))

    def status(self) -> str:
        return str(self._search_field("status"))

    def result(self) -> dict[str, Any] | None:
        text = self._search_field("result") or "null"
        result: dict[str, Any] | None = self._loads(text, "search.result")
        return result

    def _loads(self, text: str, column: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise self._corrupt(column, exc) from None

    def _corrupt(
        self, column: str, exc: json.JSONDecodeError, trial_id: int | None = None
    ) -> ValidationError:
        row = "" if trial_id is None else f"trial {trial_id} holds "
        return ValidationError(
            str(self.path), f"{row}corrupt JSON ({exc.msg} at char {exc.pos})", field=column
        )

    def check_same_spec(self, spec: Mapping[str, Any]) -> None:
        """Raise StoreError naming the first key where ``spec`` differs from the stored one."""
        differs = first_difference(self.spec(), json.loads(dumps(spec)))
        if differs is not None:
            raise StoreError(
                f"{self.path} holds a search with a different specification"
                f" (first difference: '{differs}'); resume with the same search file"
            )

    def resume(self, spec: Mapping[str, Any]) -> None:
        """Check ``spec`` is the stored one and mark the search running again."""
        self.check_same_spec(spec)
        self._set_search("status = 'running'", ())

    def finish(self, status: str, result: Mapping[str, Any] | None) -> None:
        """Close the search: ``finished`` with its result, or ``interrupted``/``failed``."""
        _check(status, SEARCH_STATUSES, "search status")
        self._set_search(
            "status = ?, result = ?", (status, None if result is None else dumps(result))
        )

    def _set_search(self, assignments: str, params: tuple[Any, ...]) -> None:
        with self._write() as conn:
            done = conn.execute(
                f"UPDATE search SET {assignments}, updated_at = ?", (*params, time.time())
            )
            if done.rowcount == 0:
                raise StoreError(f"{self.path} holds no search yet")

    # -- trials -----------------------------------------------------------------------------------

    def start_trial(
        self,
        trial_id: int,
        candidate_key: str,
        candidate: CandidateRecord,
        asked_after: int | None = None,
    ) -> None:
        """Record a trial as running; ``asked_after``: how many observations the strategy had
        been told when it proposed this trial (a resume replays the same order). Restarting an
        unfinished trial (on resume) is allowed."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT status FROM trials WHERE trial_id = ?", (trial_id,)
            ).fetchone()
            if row is not None and row[0] != "running":
                raise StoreError(f"trial {trial_id} already finished ({row[0]}); it is not re-run")
            conn.execute(
                "INSERT OR REPLACE INTO trials (trial_id, candidate_key, candidate, status,"
                " started_at, asked_after) VALUES (?, ?, ?, 'running', ?, ?)",
                (trial_id, candidate_key, dumps(candidate.to_json()), time.time(), asked_after),
            )

    def finish_trial(
        self,
        trial_id: int,
        status: str,
        runtime_s: float | None,
        cost_usd: float | None,
        search_cost_usd: float | None,
        result: Mapping[str, Any] | None,
        message: str = "",
    ) -> None:
        """Complete a running trial. An ``ok`` trial needs its runtime and cost."""
        _check(status, FINISHED_STATUSES, "trial status")
        if status == "ok" and (runtime_s is None or cost_usd is None):
            raise ValueError("an 'ok' trial needs runtime_s and cost_usd")
        with self._write() as conn:
            done = conn.execute(
                "UPDATE trials SET status = ?, runtime_s = ?, cost_usd = ?, search_cost_usd = ?,"
                " result = ?, message = ?, finished_at = ?"
                " WHERE trial_id = ? AND status = 'running'",
                (
                    status,
                    runtime_s,
                    cost_usd,
                    search_cost_usd,
                    None if result is None else dumps(result),
                    message,
                    time.time(),
                    trial_id,
                ),
            )
            if done.rowcount == 0:
                raise StoreError(f"trial {trial_id} is not running in {self.path}")

    def set_told(self, trial_id: int, tell_seq: int) -> None:
        """Record that the strategy was told this trial as its ``tell_seq``-th observation."""
        with self._write() as conn:
            conn.execute("UPDATE trials SET tell_seq = ? WHERE trial_id = ?", (tell_seq, trial_id))

    def replay_order(self) -> list[tuple[int, int | None, int | None]]:
        """``(trial_id, asked_after, tell_seq)`` of every trial, by trial id."""
        rows = self._read("SELECT trial_id, asked_after, tell_seq FROM trials ORDER BY trial_id")
        return [(int(t), a, s) for t, a, s in rows]

    def trials(self) -> list[TrialRow]:
        return self._trials("")

    def finished_trials(self) -> list[TrialRow]:
        return self._trials("WHERE status != 'running'")

    def unfinished_trials(self) -> list[TrialRow]:
        """Trials that were in flight when the search stopped: a resumed search re-runs them."""
        return self._trials("WHERE status = 'running'")

    def _trials(self, where: str) -> list[TrialRow]:
        rows = self._read(f"SELECT {TRIAL_COLUMNS} FROM trials {where} ORDER BY trial_id")
        return [self._trial_row(r) for r in rows]

    def _trial_row(self, r: Sequence[Any]) -> TrialRow:
        try:
            return TrialRow.from_sql(r)
        except json.JSONDecodeError as exc:
            # from_sql decodes several columns: the one that failed holds the document.
            column = _TRIAL_COLUMN_NAMES[list(r).index(exc.doc)]
            raise self._corrupt(f"trials.{column}", exc, trial_id=r[0]) from None

    def trial(self, trial_id: int) -> TrialRow:
        (row,) = self._trials(f"WHERE trial_id = {int(trial_id)}")
        return row

    def next_trial_id(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(trial_id) + 1, 0) FROM trials")[0][0])

    # -- instances --------------------------------------------------------------------------------

    def record_instances(
        self,
        trial_id: int,
        instances: Sequence[InstanceLike | Mapping[str, Any]],
        state: str = "launching",
        *,
        launched_at: float | None = None,
    ) -> None:
        """Record (or update) a trial's machines: Instance objects, or mappings of their fields.

        ``launched_at`` (the engine's clock when the launch was asked) starts each machine's bill;
        an update keeps the first one recorded. An instance's ``node_rank`` and its addresses
        (never a key) are kept too.
        """
        _check(state, INSTANCE_STATES, "instance state")
        now = time.time()
        rows = [
            (*instance_fields(i), trial_id, state, now, *_instance_extras(i), launched_at)
            for i in instances
        ]
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO instances (provider, instance_id, region, trial_id, state, updated_at,"
                " node_rank, info, launched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (provider, instance_id) DO UPDATE SET"
                " trial_id = excluded.trial_id, state = excluded.state,"
                " updated_at = excluded.updated_at, node_rank = excluded.node_rank,"
                " info = COALESCE(excluded.info, info),"
                # An id seen again after it terminated (an inventory host) is a new machine life.
                " launched_at = CASE WHEN state = 'terminated' THEN excluded.launched_at"
                " ELSE COALESCE(launched_at, excluded.launched_at) END,"
                " terminated_at = CASE WHEN excluded.state = 'terminated' THEN terminated_at"
                " ELSE NULL END",
                rows,
            )

    def set_instance_state(self, instance_id: str, state: str, *, at: float | None = None) -> bool:
        """Update one machine's state; False if the store never recorded that instance.
        ``terminated`` also stops its bill, at ``at`` (default now)."""
        _check(state, INSTANCE_STATES, "instance state")
        now = time.time()
        ended = (at if at is not None else now) if state == "terminated" else None
        with self._write() as conn:
            done = conn.execute(
                "UPDATE instances SET state = ?, updated_at = ?,"
                " terminated_at = COALESCE(terminated_at, ?) WHERE instance_id = ?",
                (state, now, ended, instance_id),
            )
            return done.rowcount > 0

    def remember_host_key(self, instance_id: str, key: str) -> None:
        """Record the host key a fresh machine showed on first contact (trusted from then on)."""
        self._set_info(instance_id, "host_key", key)

    def _set_info(self, instance_id: str, key: str, value: Any) -> None:
        with self._write() as conn:
            (info,) = conn.execute(
                "SELECT COALESCE(info, '{}') FROM instances WHERE instance_id = ?", (instance_id,)
            ).fetchone() or ("{}",)
            conn.execute(
                "UPDATE instances SET info = ? WHERE instance_id = ?",
                (dumps({**json.loads(info), key: value}), instance_id),
            )

    def mark_reached(self, instance_id: str) -> None:
        """Record that the search reached the machine (so something of it may run there)."""
        self._set_info(instance_id, "reached", True)

    def was_reached(self, instance_id: str) -> bool:
        """Whether the machine's current trial ever reached it (nothing of ours runs there if
        not)."""
        return bool(self._info(instance_id).get("reached"))

    def host_key(self, instance_id: str) -> str | None:
        """The host key recorded for ``instance_id`` on first contact, if any."""
        key = self._info(instance_id).get("host_key")
        return None if key is None else str(key)

    def _info(self, instance_id: str) -> Mapping[str, Any]:
        rows = self._instances("WHERE instance_id = ?", (instance_id,))
        return (rows[0].info or {}) if rows else {}

    def instances(self) -> list[InstanceRow]:
        return self._instances("")

    def live_instances(self) -> list[InstanceRow]:
        """Machines not known to be terminated: what a crash may have left running."""
        return self._instances("WHERE state != 'terminated'")

    def _instances(self, where: str, params: Sequence[Any] = ()) -> list[InstanceRow]:
        rows = self._read(
            f"SELECT {INSTANCE_COLUMNS} FROM instances {where} ORDER BY trial_id, instance_id",
            params,
        )
        return [InstanceRow.from_sql(r) for r in rows]

    def trial_instances(self, trial_id: int) -> list[InstanceRow]:
        return self._instances("WHERE trial_id = ?", (int(trial_id),))

    # -- launches ---------------------------------------------------------------------------------

    def record_launch(
        self,
        cluster_name: str,
        trial_id: int,
        provider: str,
        region: str,
        zone: str | None,
        tags: Mapping[str, str],
    ) -> None:
        """Write the intent to launch, before the provider is asked."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO launches (cluster_name, trial_id, provider, region, zone,"
                " tags, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'intent', ?)",
                (cluster_name, trial_id, provider, region, zone, dumps(dict(tags)), time.time()),
            )

    def set_launch_state(self, cluster_name: str, state: str) -> None:
        _check(state, ("intent", "launched", "failed", "terminated"), "launch state")
        with self._write() as conn:
            conn.execute(
                "UPDATE launches SET state = ?, updated_at = ? WHERE cluster_name = ?",
                (state, time.time(), cluster_name),
            )

    def open_launches(self) -> list[LaunchRow]:
        """Clusters asked for and not known to be gone: what a crash may have left running."""
        rows = self._read(
            f"SELECT {LAUNCH_COLUMNS} FROM launches WHERE state IN ('intent', 'launched')"
            " ORDER BY trial_id, cluster_name"
        )
        return [LaunchRow.from_sql(r) for r in rows]

    def launches(self, trial_id: int | None = None) -> list[LaunchRow]:
        """Every launch asked for (of ``trial_id``, or all), in the order asked: where each
        trial tried, and what came of it."""
        where, params = ("", ()) if trial_id is None else (" WHERE trial_id = ?", (int(trial_id),))
        rows = self._read(f"SELECT {LAUNCH_COLUMNS} FROM launches{where} ORDER BY rowid", params)
        return [LaunchRow.from_sql(r) for r in rows]

    # -- reservations (hosts of an inventory) -----------------------------------------------------

    def reserve_hosts(self, provider: str, hosts: Sequence[str], trial_id: int) -> bool:
        """Reserve every one of ``hosts`` for ``trial_id``, or none if any is taken."""
        with self._write() as conn:
            marks = ", ".join("?" * len(hosts))
            taken = conn.execute(
                f"SELECT 1 FROM reservations WHERE host IN ({marks})", tuple(hosts)
            ).fetchone()
            if taken:
                return False
            now = time.time()
            conn.executemany(
                "INSERT INTO reservations (host, provider, trial_id, reserved_at)"
                " VALUES (?, ?, ?, ?)",
                [(h, provider, trial_id, now) for h in hosts],
            )
            return True

    def release_hosts(self, hosts: Sequence[str]) -> None:
        with self._write() as conn:
            conn.executemany("DELETE FROM reservations WHERE host = ?", [(h,) for h in hosts])

    def reservations(self, provider: str | None = None) -> dict[str, int]:
        """Reserved hosts (of ``provider``, or all) and the trial holding each."""
        rows = self._read("SELECT host, provider, trial_id FROM reservations ORDER BY host")
        return {h: t for h, p, t in rows if provider is None or p == provider}

    # -- liveness ---------------------------------------------------------------------------------

    def heartbeat(self, owner: str) -> None:
        """Say that the search is alive (``cherrypick cleanup`` spares a store beating lately)."""
        self._set_search("heartbeat_at = ?, owner = ?", (time.time(), owner))

    def last_heartbeat(self) -> tuple[str | None, float | None]:
        """Who beat last (``host:pid``) and when, or (None, None)."""
        rows = self._read("SELECT owner, heartbeat_at FROM search")
        return (rows[0][0], rows[0][1]) if rows else (None, None)
