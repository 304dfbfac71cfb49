"""The trial table behind every report: one row per trial, feasibility and the running best.

The frame carries its :class:`Objective` in ``frame.attrs["objective"]`` so plots can label axes and
draw the limit without being told again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any

import pandas as pd

from cherrypick.optimizer.base import Objective
from cherrypick.store import TrialRow, TrialStore
from cherrypick.trials import CandidateRecord
from cherrypick.units import format_duration

COLUMNS = (
    "trial_id",
    *(f.name for f in fields(CandidateRecord)),
    "status",
    "runtime_s",
    "cost_usd",
    "search_cost_usd",
    "feasible",
    "best_so_far",
    "message",
)
_INTEGER_COLUMNS = ("trial_id", "gpus_per_node", "nodes")
_FLOAT_COLUMNS = ("price_per_hour", "runtime_s", "cost_usd", "search_cost_usd", "best_so_far")


def objective_from_spec(spec: Mapping[str, Any] | None) -> Objective:
    """A search specification's objective (``spec["objective"]``); plain cost if it has none."""
    given = (spec or {}).get("objective") or {}
    return Objective(
        kind=given.get("kind", "cost"),
        max_runtime_s=given.get("max_runtime_s"),
        max_cost_usd=given.get("max_cost_usd"),
    )


def objective_of(frame: pd.DataFrame) -> Objective:
    found = frame.attrs.get("objective")
    return found if isinstance(found, Objective) else Objective()


def is_feasible(row: TrialRow, objective: Objective) -> bool:
    if row.status != "ok" or row.runtime_s is None or row.cost_usd is None:
        return False
    return objective.feasible(row.runtime_s, row.cost_usd)


def best_row_index(frame: pd.DataFrame) -> Any:
    """The frame index of the best feasible trial (``Objective.rank_key``), or None."""
    objective = objective_of(frame)
    feasible = frame[frame["feasible"]]
    if feasible.empty:
        return None
    keys = [
        (*objective.rank_key(runtime, cost), trial_id)
        for runtime, cost, trial_id in zip(
            feasible["runtime_s"], feasible["cost_usd"], feasible["trial_id"], strict=True
        )
    ]
    return feasible.index[keys.index(min(keys))]


def _record(row: TrialRow, objective: Objective) -> dict[str, Any]:
    record: dict[str, Any] = row.candidate.to_json()
    record.update(
        trial_id=row.trial_id,
        status=row.status,
        runtime_s=row.runtime_s,
        cost_usd=row.cost_usd,
        search_cost_usd=row.search_cost_usd,
        feasible=is_feasible(row, objective),
        message=row.message,
    )
    return record


def build_frame(rows: Sequence[TrialRow], objective: Objective) -> pd.DataFrame:
    ordered = sorted(rows, key=lambda r: r.trial_id)
    frame = pd.DataFrame([_record(r, objective) for r in ordered], columns=list(COLUMNS))
    for name in _INTEGER_COLUMNS:
        frame[name] = frame[name].astype("Int64")
    for name in _FLOAT_COLUMNS:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    frame["feasible"] = frame["feasible"].astype(bool)
    value = frame["cost_usd"] if objective.kind == "cost" else frame["runtime_s"]
    # cummin leaves the gaps (infeasible trials) empty; the best so far carries over them.
    frame["best_so_far"] = value.where(frame["feasible"]).cummin().ffill()
    frame.attrs["objective"] = objective
    return frame


def trials_frame(
    source: TrialStore | Sequence[TrialRow], objective: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """One row per trial, in trial order.

    ``objective`` is a spec's objective mapping (``{"kind": "cost", "max_runtime_s": 3600}``);
    by default the store's own, or plain cost for a list of rows.
    """
    if isinstance(source, TrialStore):
        spec = source.spec() if source.has_search() else None
        goal = objective_from_spec(spec if objective is None else {"objective": objective})
        return build_frame(source.trials(), goal)
    return build_frame(source, objective_from_spec({"objective": objective}))


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``ok`` trials no other ok trial beats on both runtime and cost, by runtime."""
    done = frame[(frame["status"] == "ok") & frame["runtime_s"].notna() & frame["cost_usd"].notna()]
    done = done.sort_values(["runtime_s", "cost_usd", "trial_id"], kind="stable")
    keep: list[Any] = []
    best_cost = math.inf
    last: tuple[float, float] | None = None
    for index, runtime, cost in zip(done.index, done["runtime_s"], done["cost_usd"], strict=True):
        if cost < best_cost or (runtime, cost) == last:  # an exact twin of a front point stays
            keep.append(index)
            best_cost, last = cost, (runtime, cost)
    return done.loc[keep]


def _money(value: float) -> str:
    return "" if math.isnan(value) else f"{value:,.2f}"


def _time(value: float) -> str:
    return "" if math.isnan(value) else format_duration(value)


def formatters(frame: pd.DataFrame) -> dict[str, Callable[[float], str]]:
    """Readable dollars and durations for the frame's float columns (to_string, to_html)."""
    found: dict[str, Callable[[float], str]] = {
        "price_per_hour": _money,
        "runtime_s": _time,
        "cost_usd": _money,
        "search_cost_usd": _money,
    }
    found["best_so_far"] = _money if objective_of(frame).kind == "cost" else _time
    return found
