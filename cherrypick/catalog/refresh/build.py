"""Refresh the bundled catalogs ``configs/catalogs/{aws,azure,gcp}.csv`` from the catalog facts.

Run it when the facts change (never on a search's path)::

    cherrypick catalog refresh --from configs/catalog-facts --out configs/catalogs

The facts folder holds verbatim GPU rows of SkyPilot's VM catalogs (``aws_*.csv``, ``gcp_*.csv``,
``azure_*.csv``), ``SOURCES.md`` with their provenance and ``retired-offerings.csv`` with the
types the clouds retired. The output depends only on those files, ``configs/gpus.yaml``, the rules
in ``cherrypick.catalog.refresh.rules`` and the prices of the catalog being replaced (``flags``),
so a rebuild is byte-for-byte identical. Every file is read back through the catalog reader
before it is written. ``finish`` is the part shared with the provider API refresh (``api``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cherrypick.catalog.csv_format import read_catalog
from cherrypick.catalog.gpus import GpuSpec
from cherrypick.catalog.offerings import PROVIDERS, load_gpus
from cherrypick.catalog.refresh.facts import read_aws, read_azure, read_gcp
from cherrypick.catalog.refresh.flags import FLAG_NOTES, apply_flags, flag_rows
from cherrypick.catalog.refresh.offers import Notes, ZoneOffer
from cherrypick.catalog.refresh.output import ZONES_NOTE, catalog_rows, changes, render
from cherrypick.catalog.refresh.retired import RETIRED_FILE, drop_retired, read_retired
from cherrypick.catalog.refresh.rows import cells, collapse
from cherrypick.catalog.refresh.rules import RULE_NOTES, SOURCE_NOTES
from cherrypick.errors import InputError, ValidationError

__all__ = [
    "COMMON_NOTES",
    "DEFAULT_RETRIEVED",
    "Draft",
    "Refreshed",
    "build_catalogs",
    "existing_text",
    "finish",
    "parse_date",
]

# When the facts were gathered from their public sources (SOURCES.md records commits, not dates).
DEFAULT_RETRIEVED = "2026-11-21"
_READERS: dict[str, Callable[[Path, Notes], list[ZoneOffer]]] = {
    "aws": read_aws,
    "azure": read_azure,
    "gcp": read_gcp,
}
COMMON_NOTES = (
    "one row per (region, instance_type); zones collapsed: price_per_hour is the region's "
    "on-demand USD per hour for one VM (the price most zones list, the lowest on a tie; "
    "disagreements are listed below), spot_price_per_hour the lowest zone spot price (empty: no "
    "zone lists one)",
    "a (type, zone) listed twice is merged: one on-demand price, the twins' lowest spot price",
    "a spot price at or above the on-demand price is a placeholder: left empty",
    "types with no on-demand price in any zone are left out (listed below)",
    "gpu: a key of configs/gpus.yaml; gpu_memory_gib: the source's GPU memory MiB / 1024 where it "
    "gives one, else the gpus.yaml figure",
    ZONES_NOTE,
)
_RETIRED_NOTE = (
    f"retired: types that configs/catalog-facts/{RETIRED_FILE} lists as retired on or before the "
    "retrieval date are left out (listed below, with the notice)"
)
_CHECKS = (*FLAG_NOTES, _RETIRED_NOTE)


@dataclass(frozen=True)
class Draft:
    """What a source gave for one provider, before its rows are collapsed, flagged and written:
    the header's first lines (source, date, how to refresh), its fixed notes, the zone offers
    and the notes counted while reading them."""

    provider: str
    head: tuple[str, ...]
    fixed_notes: tuple[str, ...]
    offers: tuple[ZoneOffer, ...]
    notes: Notes
    source: str


@dataclass(frozen=True)
class Refreshed:
    """One provider's new catalog: its text (validated), where it goes, what was flagged and
    what changed from the file there."""

    provider: str
    target: Path
    text: str
    offerings: int
    flags: tuple[str, ...]
    changes: tuple[str, ...]

    def write(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.target.write_text(self.text, encoding="utf-8")


def build_catalogs(
    facts: Path,
    out: Path,
    retrieved: str = DEFAULT_RETRIEVED,
    gpus: Path | None = None,
    *,
    providers: Sequence[str] = PROVIDERS,
    keep_flagged: bool = False,
) -> dict[str, Refreshed]:
    """Each provider's catalog rebuilt from ``facts`` for ``out`` (not written yet)."""
    specs = load_gpus(gpus)
    as_of = parse_date(retrieved)
    retirements = read_retired(facts / RETIRED_FILE)
    refreshed = {}
    for provider, (path, origin) in _sources(facts, providers).items():
        notes = Notes()
        offers = drop_retired(provider, _READERS[provider](path, notes), retirements, as_of, notes)
        draft = Draft(
            provider,
            _facts_head(origin, path.name, retrieved),
            (*COMMON_NOTES, *SOURCE_NOTES[provider], *RULE_NOTES[provider], *_CHECKS),
            tuple(offers),
            notes,
            path.name,
        )
        refreshed[provider] = finish(draft, out / f"{provider}.csv", specs, keep_flagged)
    return refreshed


def _facts_head(origin: str, name: str, retrieved: str) -> tuple[str, ...]:
    return (
        f"source: skypilot-org/skypilot-catalog {origin}, GPU rows as extracted in the catalog "
        f"facts ({name}; provenance in its SOURCES.md)",
        f"retrieved: {retrieved}",
        # the command the docs give (``cherrypick catalog refresh --from ...`` is the same)
        "refresh: python -m cherrypick.catalog.refresh --from configs/catalog-facts "
        "--out configs/catalogs",
    )


def finish(
    draft: Draft, target: Path, specs: Mapping[str, GpuSpec], keep_flagged: bool
) -> Refreshed:
    """Collapse, flag (against the file at ``target``), render and validate one catalog."""
    rows = collapse(draft.offers, draft.notes, draft.source)
    old = existing_text(target)
    kept, flag_lines = apply_flags(rows, flag_rows(rows, _prices(old)), keep_flagged)
    notes = [*draft.fixed_notes, *draft.notes.lines(), *flag_lines]
    text = render(draft.head, notes, [cells(draft.provider, row, specs) for row in kept])
    count = len(read_catalog(text, str(target), specs, {}))
    moved = tuple(changes(draft.provider, old, text))
    return Refreshed(draft.provider, target, text, count, tuple(flag_lines), moved)


def existing_text(target: Path) -> str:
    """The text of the catalog file at ``target``; empty when there is none (or unreadable)."""
    try:
        return target.read_text(encoding="utf-8") if target.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return ""  # nothing comparable: no price moves are flagged, every row shows as added


def _prices(text: str) -> dict[tuple[str, str], float]:
    prices = {}
    for key, row in catalog_rows(text).items():
        try:
            prices[key] = float(row.get("price_per_hour", ""))
        except ValueError:
            continue
    return prices


def parse_date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--retrieved: not a date (YYYY-MM-DD): '{text}'") from None


def _sources(facts: Path, providers: Sequence[str]) -> dict[str, tuple[Path, str]]:
    """Each provider's facts file and its provenance ("path @ commit") from SOURCES.md."""
    manifest = facts / "SOURCES.md"
    try:
        table = manifest.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(str(manifest), f"cannot read: {exc.strerror or exc}") from None
    sources = {}
    for provider in providers:
        found = sorted(facts.glob(f"{provider}_*.csv"))
        if len(found) != 1:
            message = f"expected one {provider}_*.csv, found {len(found)}"
            raise ValidationError(str(facts), message)
        sources[provider] = (found[0], _origin(table, found[0].name, str(manifest)))
    return sources


def _origin(table: str, name: str, manifest: str) -> str:
    for line in table.splitlines():
        parts = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(parts) >= 3 and parts[0] == name:
            return f"{parts[1]} @ {parts[2]}"
    raise ValidationError(manifest, f"no provenance row for {name}")
