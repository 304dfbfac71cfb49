"""Flags on refreshed prices, applied by every refresh (facts or provider APIs).

Two rules, each on a row's on-demand price: it moved more than ``MOVE_LIMIT`` times from the same
row of the catalog being replaced, or it is more than ``REGION_LIMIT`` times off the median of the
same instance type's other regions. A flagged price that is LOW is dropped unless the caller keeps
flagged rows: a cost-minimising search and its price-only baselines go straight to the cheapest
offering, so one wrong low price becomes the answer (SkyPilot's v7 GCP catalog prices the A3 High
H100 VMs in us-central1 at under half of what Google's billing catalog lists). A HIGH one is kept:
a search only avoids it. Both kinds are listed in the file's header and on stdout.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cherrypick.catalog.refresh.rows import Row, fmt

__all__ = [
    "FLAG_NOTES",
    "MOVE_LIMIT",
    "REGION_LIMIT",
    "Flag",
    "Previous",
    "apply_flags",
    "flag_rows",
]

MOVE_LIMIT = 3.0
REGION_LIMIT = 1.8
FLAG_NOTES = (
    f"flags: an on-demand price that moved more than {MOVE_LIMIT:g}x from the catalog this file "
    f"replaced, or that is more than {REGION_LIMIT:g}x off the median of the same instance type's "
    "other regions; a LOW flagged price is dropped (a cost search would rest its answer on it), "
    "a HIGH one kept (a search only avoids it); refresh with --keep-flagged to keep both",
)

Previous = Mapping[tuple[str, str], float]  # (region, instance_type) -> on-demand price


@dataclass(frozen=True)
class Flag:
    row: Row
    reason: str
    low: bool

    def describe(self, dropped: bool) -> str:
        verdict = "dropped (a low price; --keep-flagged keeps it)" if dropped else "kept"
        return f"flagged: {self.row.describe()} {fmt(self.row.price)}: {self.reason}; {verdict}"


def flag_rows(rows: Sequence[Row], previous: Previous) -> list[Flag]:
    """Every flag on ``rows``: moved since ``previous``, then off the other regions."""
    return [*_moved(rows, previous), *_regional(rows)]


def _moved(rows: Sequence[Row], previous: Previous) -> list[Flag]:
    flags = []
    for row in rows:
        before = previous.get(row.key)
        if before is None or before <= 0:
            continue
        ratio = row.price / before
        if ratio > MOVE_LIMIT or ratio < 1 / MOVE_LIMIT:
            reason = f"was {fmt(before)} in the catalog it replaces ({ratio:.2f}x)"
            flags.append(Flag(row, reason, low=ratio < 1))
    return flags


def _regional(rows: Sequence[Row]) -> list[Flag]:
    by_type: dict[str, list[Row]] = {}
    for row in rows:
        by_type.setdefault(row.offer.instance_type, []).append(row)
    flags = []
    for group in by_type.values():
        for row in group if len(group) > 1 else ():
            median = statistics.median(other.price for other in group if other is not row)
            ratio = row.price / median
            if ratio > REGION_LIMIT or ratio < 1 / REGION_LIMIT:
                reason = f"{ratio:.2f}x the median of its other regions ({fmt(median)})"
                flags.append(Flag(row, reason, low=ratio < 1))
    return flags


def apply_flags(
    rows: Sequence[Row], flags: Sequence[Flag], keep_flagged: bool
) -> tuple[list[Row], list[str]]:
    """The rows kept, and one line per flag saying what became of its row."""
    dropped = set() if keep_flagged else {f.row.key for f in flags if f.low}
    lines = [f.describe(f.row.key in dropped) for f in flags]
    return [r for r in rows if r.key not in dropped], lines
