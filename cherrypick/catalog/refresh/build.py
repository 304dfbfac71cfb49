"""Refresh the bundled catalogs from the catalog facts: ``configs/catalogs/{aws,azure,gcp}.csv``.

Run it when the facts change (never on a search's path)::

    python -m cherrypick.catalog.refresh --from configs/catalog-facts --out configs/catalogs

The facts folder holds verbatim GPU rows of SkyPilot's VM catalogs (``aws_*.csv``, ``gcp_*.csv``,
``azure_*.csv``) and ``SOURCES.md`` with their provenance. The output depends only on those files,
``configs/gpus.yaml`` and the rules in ``cherrypick.catalog.refresh.rules``, so a rebuild is
byte-for-byte identical. Every file is read back through ``load_catalog`` before the command
succeeds.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cherrypick.catalog import COLUMNS, GpuSpec, load_catalog, load_gpus
from cherrypick.catalog.refresh.facts import Notes, ZoneOffer, read_aws, read_azure, read_gcp
from cherrypick.catalog.refresh.rules import RULE_NOTES, SOURCE_NOTES, interconnect, network_gbps
from cherrypick.errors import CherrypickError, ValidationError

__all__ = ["DEFAULT_RETRIEVED", "build_catalogs", "main"]

# When the facts were gathered from their public sources (SOURCES.md records commits, not dates).
DEFAULT_RETRIEVED = "2026-11-21"
_READERS: dict[str, Callable[[Path, Notes], list[ZoneOffer]]] = {
    "aws": read_aws,
    "azure": read_azure,
    "gcp": read_gcp,
}
_COMMON_NOTES = (
    "one row per (region, instance_type); zones collapsed: price_per_hour is the region's "
    "on-demand USD per hour for one VM (the price most zones list, the lowest on a tie; "
    "disagreements are listed below), spot_price_per_hour the lowest zone spot price (empty: no "
    "zone lists one)",
    "a (type, zone) listed twice is merged: one on-demand price, the twins' lowest spot price",
    "a spot price at or above the on-demand price is a placeholder: left empty",
    "types with no on-demand price in any zone are left out (listed below)",
    "gpu: a key of configs/gpus.yaml; gpu_memory_gib: the catalog's GpuInfo MiB / 1024 where it "
    "has one, else the gpus.yaml figure",
)


@dataclass(frozen=True)
class _Source:
    path: Path
    origin: str  # e.g. "catalogs/v7/aws/vms.csv @ 001367d2..."


def build_catalogs(
    facts: Path, out: Path, retrieved: str = DEFAULT_RETRIEVED, gpus: Path | None = None
) -> dict[str, int]:
    """Write one catalog per provider into ``out``; returns the offering count of each."""
    specs = load_gpus(gpus)
    sources = _sources(facts)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for provider, source in sources.items():
        target = out / f"{provider}.csv"
        target.write_text(_catalog_text(provider, source, retrieved, specs), encoding="utf-8")
        counts[provider] = len(load_catalog(paths=[target], gpus=specs))
    return counts


def _catalog_text(
    provider: str, source: _Source, retrieved: str, specs: Mapping[str, GpuSpec]
) -> str:
    notes = Notes()
    offers = _READERS[provider](source.path, notes)
    rows = [_cells(provider, row, specs) for row in _collapse(offers, notes, source.path.name)]
    return _render(provider, source, retrieved, notes, rows)


def _sources(facts: Path) -> dict[str, _Source]:
    manifest = facts / "SOURCES.md"
    try:
        table = manifest.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(str(manifest), f"cannot read: {exc.strerror or exc}") from None
    sources = {}
    for provider in _READERS:
        found = sorted(facts.glob(f"{provider}_*.csv"))
        if len(found) != 1:
            message = f"expected one {provider}_*.csv, found {len(found)}"
            raise ValidationError(str(facts), message)
        sources[provider] = _Source(found[0], _origin(table, found[0].name, str(manifest)))
    return sources


def _origin(table: str, name: str, manifest: str) -> str:
    for line in table.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] == name:
            return f"{cells[1]} @ {cells[2]}"
    raise ValidationError(manifest, f"no provenance row for {name}")


@dataclass(frozen=True)
class _Row:
    offer: ZoneOffer
    price: float
    spot: float | None


def _collapse(offers: list[ZoneOffer], notes: Notes, source: str) -> list[_Row]:
    """One row per (region, instance type), sorted; types without an on-demand price dropped."""
    groups: dict[tuple[str, str], list[ZoneOffer]] = {}
    for offer in offers:
        groups.setdefault((offer.region, offer.instance_type), []).append(offer)
    rows = [r for group in groups.values() if (r := _region_row(group, notes, source)) is not None]
    return sorted(rows, key=lambda r: (r.offer.region, _natural(r.offer.instance_type)))


def _region_row(group: list[ZoneOffer], notes: Notes, source: str) -> _Row | None:
    first = group[0]
    label = f"{first.instance_type} {first.region}"
    if len({_shape(o) for o in group}) > 1:
        raise ValidationError(source, f"{label}: zones disagree on the machine's shape")
    prices = _zone_prices(group, notes, label)
    if not prices:
        notes.count(f"left out: {label}: no on-demand price", len(group))
        return None
    price = _regional_price(prices, notes, label, len(group))
    return _Row(first, price, _regional_spot(group, price, notes, label))


def _shape(offer: ZoneOffer) -> tuple[object, ...]:
    return offer.vcpus, offer.memory_gib, offer.gpu, offer.gpus_per_node, offer.gpu_memory_gib


def _zone_prices(group: list[ZoneOffer], notes: Notes, label: str) -> list[float]:
    """Each zone's on-demand price; a zone listed twice counts once, at its twins' lowest."""
    by_zone: dict[str, list[ZoneOffer]] = {}
    for offer in group:
        by_zone.setdefault(offer.zone, []).append(offer)
    prices = []
    for twins in by_zone.values():
        if len(twins) > 1:
            notes.count(f"{label}: a (type, zone) listed twice", len(twins) - 1)
        listed = [o.price for o in twins if o.price is not None]
        if listed:
            prices.append(min(listed))
    return prices


def _regional_price(prices: list[float], notes: Notes, label: str, rows: int) -> float:
    """The price most zones list, the lowest on a tie."""
    price = max(Counter(prices).items(), key=lambda item: (item[1], -item[0]))[0]
    if len(set(prices)) > 1:
        listed = ", ".join(_fmt(p) for p in sorted(set(prices)))
        notes.count(f"{label}: zones list {listed}; kept {_fmt(price)}", rows)
    return price


def _regional_spot(group: list[ZoneOffer], price: float, notes: Notes, label: str) -> float | None:
    spots = [o.spot for o in group if o.spot is not None]
    if spots and min(spots) >= price:
        notes.count(f"{label}: spot {_fmt(min(spots))} >= on-demand: left empty")
        return None
    return min(spots) if spots else None


def _cells(provider: str, row: _Row, specs: Mapping[str, GpuSpec]) -> dict[str, str]:
    o = row.offer
    if o.gpu not in specs:
        raise ValidationError(
            "configs/gpus.yaml", f"no entry for GPU '{o.gpu}' ({o.instance_type})"
        )
    memory = o.gpu_memory_gib if o.gpu_memory_gib is not None else specs[o.gpu].memory_gib
    return {
        "provider": provider,
        "region": o.region,
        "instance_type": o.instance_type,
        "vcpus": str(o.vcpus),
        "memory_gib": _fmt(o.memory_gib),
        "gpu": o.gpu,
        "gpus_per_node": str(o.gpus_per_node),
        "gpu_memory_gib": _fmt(memory),
        "interconnect": interconnect(provider, o.instance_type, o.gpus_per_node),
        "network_gbps": _fmt(network_gbps(provider, o.instance_type, o.vcpus, o.gpu)),
        "price_per_hour": _fmt(row.price),
        "spot_price_per_hour": "" if row.spot is None else _fmt(row.spot),
    }


def _render(
    provider: str, source: _Source, retrieved: str, notes: Notes, rows: list[dict[str, str]]
) -> str:
    header = [
        f"# source: skypilot-org/skypilot-catalog {source.origin}, GPU rows as extracted in "
        f"the catalog facts ({source.path.name}; provenance in its SOURCES.md)",
        f"# retrieved: {retrieved}",
        "# refresh: python -m cherrypick.catalog.refresh --from configs/catalog-facts "
        "--out configs/catalogs",
        *(f"# notes: {n}" for n in _notes(provider, notes)),
        ",".join(COLUMNS),
    ]
    body = [",".join(row[c] for c in COLUMNS) for row in rows]
    return "\n".join(header + body) + "\n"


def _notes(provider: str, notes: Notes) -> tuple[str, ...]:
    return (*_COMMON_NOTES, *SOURCE_NOTES[provider], *RULE_NOTES[provider], *notes.lines())


def _fmt(value: float) -> str:
    """Shortest stable text of a price or size: at most 6 decimals, no trailing zeros."""
    text = f"{round(value, 6):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _natural(text: str) -> list[str | int]:
    """Sort key that puts g5.2xlarge before g5.12xlarge."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cherrypick.catalog.refresh", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--from", dest="facts", type=Path, required=True, help="catalog facts folder"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for aws.csv, azure.csv, gcp.csv"
    )
    parser.add_argument(
        "--retrieved", default=DEFAULT_RETRIEVED, help="date the facts were gathered (%(default)s)"
    )
    parser.add_argument(
        "--gpus", type=Path, default=None, help="GPU file (default: the bundled configs/gpus.yaml)"
    )
    args = parser.parse_args(argv)
    try:
        counts = build_catalogs(args.facts, args.out, args.retrieved, args.gpus)
    except CherrypickError as exc:
        print(f"catalog_build: error: {exc}", file=sys.stderr)
        return exc.exit_code
    for provider, count in counts.items():
        print(f"{args.out / (provider + '.csv')}: {count} offerings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
