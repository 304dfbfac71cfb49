"""What every source of a refresh yields: one record per VM type and zone, and counted notes.

The facts readers (``facts``) and the provider API readers (``aws``, ``gcp``, ``azure``) all turn
their source into ``ZoneOffer`` values; ``rows`` collapses them into one catalog row per region.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Notes", "ProviderApi", "ZoneOffer", "known_gpus"]


@dataclass(frozen=True)
class ZoneOffer:
    """One GPU VM type in one zone with its prices, before zones are collapsed. ``zone`` is None
    where the source has no zones (the region is the only placement)."""

    region: str
    zone: str | None
    instance_type: str
    vcpus: int
    memory_gib: float
    gpu: str
    gpus_per_node: int
    gpu_memory_gib: float | None  # None: the source does not say; the datasheet figure is used
    price: float | None
    spot: float | None


class Notes:
    """Counts of what was done to which source rows, in the order first seen."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def count(self, what: str, rows: int = 1) -> None:
        self._counts[what] = self._counts.get(what, 0) + rows

    def lines(self) -> list[str]:
        return [
            f"{what} [{n} source row{'s' if n > 1 else ''}]" for what, n in self._counts.items()
        ]


@dataclass(frozen=True)
class ProviderApi:
    """One provider's API refresh: ``fetch(clients, regions, notes)`` reads its answers into zone
    offers; ``default_clients(account)`` builds the real SDK clients (the GCP project, the Azure
    subscription; None: the SDK's default); ``errors()`` are the SDK's exception types, which the
    refresh reports in one line. ``source`` and ``notes`` go into the catalog's header."""

    source: str
    notes: tuple[str, ...]
    default_clients: Callable[[str | None], Any]
    fetch: Callable[[Any, Sequence[str], Notes], list[ZoneOffer]]
    errors: Callable[[], tuple[type[Exception], ...]]


def known_gpus(
    offers: Iterable[ZoneOffer], gpus: Mapping[str, object], notes: Notes
) -> list[ZoneOffer]:
    """The offers whose GPU ``configs/gpus.yaml`` describes; the others are left out, counted
    (a provider API lists new GPUs before the datasheet file knows them)."""
    kept = []
    for offer in offers:
        if offer.gpu in gpus:
            kept.append(offer)
        else:
            notes.count(f"left out: GPU '{offer.gpu}' has no entry in configs/gpus.yaml")
    return kept
