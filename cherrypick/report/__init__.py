"""Reports of a stored search: the trial table, the recommendation, a CSV, PNG plots and one
self-contained HTML page (what ``cherrypick report`` prints and writes)."""

from cherrypick.report.frame import pareto_front, trials_frame
from cherrypick.report.plots import plot_breakdown, plot_convergence, plot_cost_runtime
from cherrypick.report.stored import (
    Report,
    ReportFiles,
    format_table,
    load_report,
    recommendation,
    summary,
    write_report,
)

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
