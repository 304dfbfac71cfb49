"""A refreshed catalog's text (header comments, then the CSV) and what changed against the file
it replaces."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence

from cherrypick.catalog.csv_format import COLUMNS

__all__ = ["ZONES_NOTE", "catalog_rows", "changes", "render"]

ZONES_NOTE = (
    "zones: the zones of the region that list the type, cheapest first (ties: name order), "
    "separated by spaces; a trial tries them in this order; AWS gives zone IDs (use1-az2: the "
    "same zone in every account), GCP zone names, Azure zone numbers; empty where the source has "
    "none (the region is the placement)"
)

_Cells = dict[str, str]


def render(head: Sequence[str], notes: Sequence[str], rows: Sequence[Mapping[str, str]]) -> str:
    """``head`` lines (``source: ...``) and notes as ``#`` comments, then the header and rows."""
    lines = [
        *(f"# {line}" for line in head),
        *(f"# notes: {note}" for note in notes),
        ",".join(COLUMNS),
        *(",".join(row[c] for c in COLUMNS) for row in rows),
    ]
    return "\n".join(lines) + "\n"


def changes(provider: str, old: str, new: str) -> list[str]:
    """One line per row added, removed or changed from ``old`` to ``new`` (catalog texts)."""
    before, after = catalog_rows(old), catalog_rows(new)
    lines = [f"added: {_name(provider, k)} {_brief(after[k])}" for k in after if k not in before]
    lines += [
        f"removed: {_name(provider, k)} {_brief(before[k])}" for k in before if k not in after
    ]
    for key in (k for k in after if k in before):
        moved = [
            f"{c} {before[key].get(c, '')!r} -> {after[key][c]!r}"
            for c in COLUMNS
            if before[key].get(c) != after[key][c]
        ]
        if moved:
            lines.append(f"changed: {_name(provider, key)}: {'; '.join(moved)}")
    return lines


def catalog_rows(text: str) -> dict[tuple[str, str], _Cells]:
    """The rows of a catalog text by (region, instance_type), read leniently (any schema)."""
    data = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    rows = {}
    for row in csv.DictReader(data):
        if row.get("region") and row.get("instance_type"):
            rows[(row["region"], row["instance_type"])] = {k: v or "" for k, v in row.items() if k}
    return rows


def _name(provider: str, key: tuple[str, str]) -> str:
    return f"{provider} {key[0]} {key[1]}"


def _brief(cells: _Cells) -> str:
    count, gpu = cells.get("gpus_per_node", "?"), cells.get("gpu", "?")
    return f"({count}x {gpu}, ${cells.get('price_per_hour', '?')}/h)"
