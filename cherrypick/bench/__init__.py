"""Benchmarks of the search, run as ``cherrypick bench NAME``: replay on measured tables, dry runs
on the simulator, the best any stop rule could reach, and the time of one ask()."""

from cherrypick.bench.replay import BenchmarkResult, benchmark, format_result
from cherrypick.bench.tables import ReplayTable, ReplayWorkload, load_table, select_workloads

__all__ = [
    "BenchmarkResult",
    "ReplayTable",
    "ReplayWorkload",
    "benchmark",
    "format_result",
    "load_table",
    "select_workloads",
]
