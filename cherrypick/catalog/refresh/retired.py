"""Retired VM types: ``configs/catalog-facts/retired-offerings.csv``, read and applied.

A facts snapshot keeps listing what a cloud no longer launches (SkyPilot's v6 Azure catalog
still has the K80 NC-series, retired in 2023); a search would pick them for their low prices.
The facts-based refresh drops the rows of every type retired on or before its retrieval date.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from cherrypick.catalog.refresh.offers import Notes, ZoneOffer
from cherrypick.errors import ValidationError

__all__ = ["RETIRED_FILE", "Retirement", "drop_retired", "read_retired"]

RETIRED_FILE = "retired-offerings.csv"
_COLUMNS = ("provider", "series", "instance_types", "retired", "source")


@dataclass(frozen=True)
class Retirement:
    """One retired series: which of our instance type names it covers, when and who said so."""

    provider: str
    series: str
    patterns: tuple[str, ...]
    retired: datetime.date
    source: str

    def covers(self, provider: str, instance_type: str) -> bool:
        return provider == self.provider and any(
            fnmatchcase(instance_type, p) for p in self.patterns
        )


def read_retired(path: Path) -> list[Retirement]:
    """The retirements of ``path``; a missing file means none."""
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(str(path), f"cannot read: {exc.strerror or exc}") from None
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1) if _is_data(line)]
    reader = csv.DictReader(line for _, line in numbered)
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        line = numbered[0][0] if numbered else None
        raise ValidationError(str(path), f"expected the columns {', '.join(_COLUMNS)}", line=line)
    return [
        _retirement(row, str(path), n) for (n, _), row in zip(numbered[1:], reader, strict=True)
    ]


def _is_data(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _retirement(row: dict[str, str], source: str, line: int) -> Retirement:
    try:
        retired = datetime.date.fromisoformat(row["retired"])
    except ValueError:
        message = f"not a date (YYYY-MM-DD): '{row['retired']}'"
        raise ValidationError(source, message, line=line, field="retired") from None
    patterns = tuple(row["instance_types"].split())
    if not patterns or not row["source"].strip():
        raise ValidationError(source, "needs instance_types and a source", line=line)
    return Retirement(row["provider"], row["series"], patterns, retired, row["source"].strip())


def drop_retired(
    provider: str,
    offers: Sequence[ZoneOffer],
    retirements: Sequence[Retirement],
    as_of: datetime.date,
    notes: Notes,
) -> list[ZoneOffer]:
    """The offers not retired by ``as_of``; the dropped ones counted per notice, with their
    type names."""
    due = [r for r in retirements if r.retired <= as_of]
    kept = []
    dropped: dict[Retirement, list[ZoneOffer]] = {}
    for offer in offers:
        match = next((r for r in due if r.covers(provider, offer.instance_type)), None)
        if match is None:
            kept.append(offer)
        else:
            dropped.setdefault(match, []).append(offer)
    for retirement, gone in dropped.items():
        names = ", ".join(sorted({o.instance_type for o in gone}))
        when = retirement.retired.isoformat()
        what = f"left out, retired {when} ({retirement.series}): {names}; per {retirement.source}"
        notes.count(what, len(gone))
    return kept
