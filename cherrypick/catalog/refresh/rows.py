"""Collapsing zone offers into one catalog row per (region, instance type), and its CSV cells.

A row's price is the price most zones list (the lowest on a tie); its spot price the lowest zone
spot price; its zones every zone that lists the type, cheapest first (ties: name order). Every
disagreement between zones is counted in ``Notes``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cherrypick.catalog.gpus import GpuSpec
from cherrypick.catalog.refresh.offers import Notes, ZoneOffer
from cherrypick.catalog.refresh.rules import interconnect, network_gbps
from cherrypick.errors import ValidationError

__all__ = ["Row", "cells", "collapse", "fmt", "natural"]


@dataclass(frozen=True)
class Row:
    """One region's offering: the zones' common shape, the regional prices and the zones."""

    offer: ZoneOffer
    price: float
    spot: float | None
    zones: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return self.offer.region, self.offer.instance_type

    def describe(self) -> str:
        return f"{self.offer.instance_type} {self.offer.region}"


def collapse(offers: Sequence[ZoneOffer], notes: Notes, source: str) -> list[Row]:
    """One row per (region, instance type), sorted; types without an on-demand price dropped."""
    groups: dict[tuple[str, str], list[ZoneOffer]] = {}
    for offer in offers:
        groups.setdefault((offer.region, offer.instance_type), []).append(offer)
    rows = [r for group in groups.values() if (r := _region_row(group, notes, source)) is not None]
    return sorted(rows, key=lambda r: (r.offer.region, natural(r.offer.instance_type)))


def _region_row(group: list[ZoneOffer], notes: Notes, source: str) -> Row | None:
    first = group[0]
    label = f"{first.instance_type} {first.region}"
    if len({_shape(o) for o in group}) > 1:
        raise ValidationError(source, f"{label}: zones disagree on the machine's shape")
    prices = _zone_prices(group, notes, label)
    listed = [p for p in prices.values() if p is not None]
    if not listed:
        notes.count(f"left out: {label}: no on-demand price", len(group))
        return None
    price = _regional_price(listed, notes, label, len(group))
    spot = _regional_spot(group, price, notes, label)
    return Row(first, price, spot, _zone_order(prices))


def _shape(offer: ZoneOffer) -> tuple[object, ...]:
    return offer.vcpus, offer.memory_gib, offer.gpu, offer.gpus_per_node, offer.gpu_memory_gib


def _zone_prices(
    group: list[ZoneOffer], notes: Notes, label: str
) -> dict[str | None, float | None]:
    """Each zone's on-demand price (None: not listed); a zone listed twice counts once, at its
    twins' lowest."""
    by_zone: dict[str | None, list[ZoneOffer]] = {}
    for offer in group:
        by_zone.setdefault(offer.zone, []).append(offer)
    prices: dict[str | None, float | None] = {}
    for zone, twins in by_zone.items():
        if len(twins) > 1:
            notes.count(f"{label}: a (type, zone) listed twice", len(twins) - 1)
        listed = [o.price for o in twins if o.price is not None]
        prices[zone] = min(listed) if listed else None
    return prices


def _zone_order(prices: Mapping[str | None, float | None]) -> tuple[str, ...]:
    """The named zones, cheapest first, ties (and zones without a price, last) in name order."""
    named = [(math.inf if p is None else p, z) for z, p in prices.items() if z is not None]
    return tuple(zone for _, zone in sorted(named))


def _regional_price(prices: list[float], notes: Notes, label: str, rows: int) -> float:
    """The price most zones list, the lowest on a tie."""
    price = max(Counter(prices).items(), key=lambda item: (item[1], -item[0]))[0]
    if len(set(prices)) > 1:
        listed = ", ".join(fmt(p) for p in sorted(set(prices)))
        notes.count(f"{label}: zones list {listed}; kept {fmt(price)}", rows)
    return price


def _regional_spot(group: list[ZoneOffer], price: float, notes: Notes, label: str) -> float | None:
    spots = [o.spot for o in group if o.spot is not None]
    if spots and min(spots) >= price:
        notes.count(f"{label}: spot {fmt(min(spots))} >= on-demand: left empty")
        return None
    return min(spots) if spots else None


def cells(provider: str, row: Row, specs: Mapping[str, GpuSpec]) -> dict[str, str]:
    """The row's CSV cells, by column name."""
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
        "memory_gib": fmt(o.memory_gib),
        "gpu": o.gpu,
        "gpus_per_node": str(o.gpus_per_node),
        "gpu_memory_gib": fmt(memory),
        "interconnect": interconnect(provider, o.instance_type, o.gpus_per_node),
        "network_gbps": fmt(network_gbps(provider, o.instance_type, o.vcpus, o.gpu)),
        "price_per_hour": fmt(row.price),
        "spot_price_per_hour": "" if row.spot is None else fmt(row.spot),
        "zones": " ".join(row.zones),
    }


def fmt(value: float) -> str:
    """Shortest stable text of a price or size: at most 6 decimals, no trailing zeros."""
    text = f"{round(value, 6):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def natural(text: str) -> list[str | int]:
    """Sort key that puts g5.2xlarge before g5.12xlarge."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
