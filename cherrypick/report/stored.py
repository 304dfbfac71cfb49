"""Reports of a stored search: the trial table, a CSV, PNG plots and one self-contained HTML page.

Everything ``cherrypick report`` does is a few calls here::

    from cherrypick.report import load_report, write_report

    report = load_report("search.db")
    print(report.frame)                      # one row per trial (pandas)
    files = write_report(report, "out", html=True)

The recommendation is the search's own (``result["recommendation"]["trial_id"]`` in the store)
when it finished, else the best feasible trial: lowest objective, ties by the other quantity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from cherrypick.optimizer.base import Objective
from cherrypick.report.frame import (
    best_row_index,
    build_frame,
    formatters,
    objective_from_spec,
    objective_of,
    pareto_front,
    trials_frame,
)
from cherrypick.report.html import render_html
from cherrypick.report.plots import plot_breakdown, plot_convergence, plot_cost_runtime
from cherrypick.store import TrialRow, TrialStore
from cherrypick.trials import CandidateRecord
from cherrypick.units import format_duration

__all__ = [
    "Report",
    "ReportFiles",
    "format_table",
    "load_report",
    "pareto_front",
    "plot_breakdown",
    "plot_convergence",
    "plot_cost_runtime",
    "recommendation",
    "summary",
    "trials_frame",
    "write_report",
]


@dataclass(frozen=True, eq=False)
class Report:
    """A stored search, read once: its trial frame, recommendation and status."""

    store_path: Path
    frame: pd.DataFrame
    recommendation: TrialRow | None
    search_status: str | None
    stopped_because: str | None = None
    #: The stored result's recommendation when no trial ran it (``--trials 0``: the model's pick;
    #: a cost-aware search: the untried configuration the model is surest of).
    untried: Mapping[str, Any] | None = None

    @property
    def objective(self) -> Objective:
        return objective_of(self.frame)


@dataclass(frozen=True)
class ReportFiles:
    """Where :func:`write_report` put each file; ``html`` is None unless asked for."""

    csv: Path
    convergence: Path
    cost_runtime: Path
    breakdown: Path
    html: Path | None = None

    def paths(self) -> list[Path]:
        found = [self.csv, self.convergence, self.cost_runtime, self.breakdown, self.html]
        return [p for p in found if p is not None]


def _recommend(
    rows: Sequence[TrialRow], frame: pd.DataFrame, search_result: Mapping[str, Any] | None
) -> TrialRow | None:
    by_id = {r.trial_id: r for r in rows}
    chosen = (search_result or {}).get("recommendation")
    if isinstance(chosen, Mapping) and chosen.get("trial_id") in by_id:
        return by_id[chosen["trial_id"]]
    if isinstance(chosen, Mapping) and chosen.get("trial_id") is None:
        return None  # the search recommends a configuration it did not try
    best = best_row_index(frame)
    return None if best is None else by_id[int(frame.loc[best, "trial_id"])]


def recommendation(
    source: TrialStore | Sequence[TrialRow], objective: Mapping[str, Any] | None = None
) -> TrialRow | None:
    """The recommended trial of a store (or of rows, under ``objective``); None if none feasible."""
    if isinstance(source, TrialStore):
        result = source.result() if source.has_search() else None
        return _recommend(source.trials(), trials_frame(source, objective), result)
    return _recommend(source, trials_frame(source, objective), None)


def load_report(store_path: Path | str) -> Report:
    """Read a store (a search may still be writing it). A missing file is an InputError."""
    with TrialStore(store_path, create=False) as store:
        rows = store.trials()
        known = store.has_search()
        spec = store.spec() if known else None
        status = store.status() if known else None
        result = store.result() if known else None
    frame = build_frame(rows, objective_from_spec(spec))
    reason = (result or {}).get("stopped_because")
    stopped = reason if isinstance(reason, str) else None
    chosen = (result or {}).get("recommendation")
    untried = chosen if isinstance(chosen, Mapping) and chosen.get("trial_id") is None else None
    recommended = _recommend(rows, frame, result)
    return Report(Path(store_path), frame, recommended, status, stopped, untried)


def format_table(frame: pd.DataFrame) -> str:
    """The trial table for a terminal: durations and dollars readable, messages left out."""
    shown = frame.drop(columns=["message"])
    return str(shown.to_string(index=False, formatters=formatters(frame), na_rep=""))


def _objective_text(objective: Objective) -> str:
    if objective.kind == "cost":
        limit = objective.max_runtime_s
        return "cheapest job" + ("" if limit is None else f" within {format_duration(limit)}")
    cap = objective.max_cost_usd
    return "fastest job" + ("" if cap is None else f" within ${cap:,.2f}")


def summary(report: Report) -> str:
    """A few lines: the search, its objective, why it stopped and the recommendation."""
    frame = report.frame
    ok = int((frame["status"] == "ok").sum())
    spent = float(frame["search_cost_usd"].sum(skipna=True))
    lines = [
        f"search: {report.search_status or 'not started'}, {len(frame)} trials ({ok} ok),"
        f" trials cost ${spent:,.2f}",
        f"objective: {_objective_text(report.objective)}",
    ]
    if report.stopped_because:
        lines.append(f"stopped: {report.stopped_because}")
    rec = report.recommendation
    if rec is None and report.untried is not None:
        lines.append(f"recommendation, untried: {_untried_text(report.untried)}")
    elif rec is None:
        lines.append("recommendation: none (no trial met the objective's limit)")
    else:
        lines.append(
            f"recommendation: {rec.candidate.describe()}: job cost"
            f" ${rec.cost_usd or 0.0:,.2f}, runtime {format_duration(rec.runtime_s or 0.0)}"
            f" (trial {rec.trial_id})"
        )
        if not (rec.result or {}).get("layers"):
            lines.append("breakdown: the recommendation's result has no per-layer timings")
    return "\n".join(lines)


def _untried_text(choice: Mapping[str, Any]) -> str:
    """A stored recommendation no trial ran, as the performance model predicted it."""
    names = CandidateRecord.__dataclass_fields__
    record = CandidateRecord(**{k: v for k, v in choice.items() if k in names})
    return (
        f"{record.describe()}: job cost ${float(choice['cost_usd']):,.2f}, runtime"
        f" {format_duration(float(choice['runtime_s']))} (the performance model's prediction)"
    )


def write_report(
    source: Report | Path | str,
    out_dir: Path | str,
    html: bool = False,
    *,
    csv_path: Path | str | None = None,
) -> ReportFiles:
    """Write trials.csv, convergence.png, cost_runtime.png, breakdown.png (and report.html)."""
    report = source if isinstance(source, Report) else load_report(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv = Path(csv_path) if csv_path is not None else out / "trials.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    report.frame.to_csv(csv, index=False)
    rec = report.recommendation
    rec_id = None if rec is None else rec.trial_id
    title = "" if rec is None else f"Time per step on {rec.candidate.describe()}"
    files = ReportFiles(
        csv=csv,
        convergence=plot_convergence(report.frame, out / "convergence.png"),
        cost_runtime=plot_cost_runtime(report.frame, out / "cost_runtime.png", recommended=rec_id),
        breakdown=plot_breakdown(
            None if rec is None else rec.result or {}, out / "breakdown.png", title
        ),
    )
    if not html:
        return files
    page = out / "report.html"
    page.write_text(render_html(report, summary(report), files), encoding="utf-8")
    return replace(files, html=page)
