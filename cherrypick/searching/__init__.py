"""The search: the one place where strategy, providers, workload and store meet (set-up, the
loop, one trial, the result). Named ``searching`` so that ``cherrypick.search`` stays the API
function."""

from cherrypick.searching.display import Display, make_display
from cherrypick.searching.loop import Search, run_search
from cherrypick.searching.result import Choice, SearchResult, format_summary

__all__ = [
    "Choice",
    "Display",
    "Search",
    "SearchResult",
    "format_summary",
    "make_display",
    "run_search",
]
