"""The search: the one place where strategy, providers, workload and store meet (set-up, the
loop, one trial, the result). Named ``searching`` so that ``cherrypick.search`` stays the API
function."""

from cherrypick.searching.loop import Display, Search, run_search, stderr_display
from cherrypick.searching.result import Choice, SearchResult, format_summary

__all__ = [
    "Choice",
    "Display",
    "Search",
    "SearchResult",
    "format_summary",
    "run_search",
    "stderr_display",
]
