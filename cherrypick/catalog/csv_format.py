"""Reading one catalog CSV file into validated ``Offering`` values.

The file starts with ``#`` comment lines (source, retrieval date, notes), then a header with
exactly ``COLUMNS``, then one row per offering. ``zones`` lists the zones of the region where the
offering exists, cheapest first, separated by spaces (empty: the source has no zones); the reader
puts them in ``Offering.extra["zones"]`` as a tuple, the order a trial tries them in, and the
file's ``# retrieved:`` date in ``extra["retrieved"]`` (when its prices were read; None if the
file does not say). Every error names the file, its true line number (comments included) and the
column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cherrypick.catalog.gpus import GpuSpec
from cherrypick.errors import ValidationError
from cherrypick.providers.base import Offering

__all__ = ["COLUMNS", "INTERCONNECTS", "PROVIDERS", "read_catalog"]

COLUMNS = (
    "provider",
    "region",
    "instance_type",
    "vcpus",
    "memory_gib",
    "gpu",
    "gpus_per_node",
    "gpu_memory_gib",
    "interconnect",
    "network_gbps",
    "price_per_hour",
    "spot_price_per_hour",
    "zones",
)
PROVIDERS = ("aws", "azure", "gcp")
# Ordered from slowest to fastest GPU-to-GPU link inside a VM (the feature is this ordinal).
INTERCONNECTS = ("pcie", "nvlink", "nvswitch")

# (provider, region, instance_type) -> (file, line) of its first row, across all files read
Seen = dict[tuple[str, str, str], tuple[str, int]]


def read_catalog(text: str, source: str, gpus: Mapping[str, GpuSpec], seen: Seen) -> list[Offering]:
    """Parse and validate one catalog file; ``seen`` carries keys across files for duplicates."""
    rows = [(n, line) for n, line in enumerate(text.splitlines(), 1) if _is_data(line)]
    if not rows:
        raise ValidationError(source, "no header line (the file is empty or only comments)")
    header_line, header = rows[0][0], _cells(rows[0][1])
    _check_header(header, source, header_line)
    retrieved = _retrieved(text)
    offerings = []
    for number, line in rows[1:]:
        cells = _cells(line)
        if len(cells) != len(header):
            message = f"expected {len(header)} fields, found {len(cells)}"
            raise ValidationError(source, message, line=number)
        row = _Row(source, number, dict(zip(header, cells, strict=True)), retrieved)
        offering = row.offering(gpus)
        _check_unique(offering, row, seen)
        offerings.append(offering)
    return offerings


def _retrieved(text: str) -> str | None:
    """The file's ``# retrieved: DATE`` comment: when its prices were read from their source."""
    for line in text.splitlines():
        if line.startswith("# retrieved:"):
            return line.split(":", 1)[1].strip() or None
    return None


def _is_data(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in next(csv.reader([line]))]


def _check_header(header: list[str], source: str, line: int) -> None:
    for column in COLUMNS:
        if column not in header:
            raise ValidationError(source, "missing column", line=line, field=column)
    for column in header:
        if header.count(column) > 1:
            raise ValidationError(source, "duplicate column", line=line, field=column)
        if column not in COLUMNS:
            message = f"unexpected column; the columns are: {', '.join(COLUMNS)}"
            raise ValidationError(source, message, line=line, field=column)


def _check_unique(offering: Offering, row: _Row, seen: Seen) -> None:
    key = (offering.provider, offering.region, offering.instance_type)
    if key in seen:
        where, line = seen[key]
        at = f"line {line}" if where == row.source else f"{where}, line {line}"
        message = f"duplicate of {at} (same provider, region and instance_type)"
        raise ValidationError(row.source, message, line=row.line, field="instance_type")
    seen[key] = (row.source, row.line)


@dataclass(frozen=True)
class _Row:
    source: str
    line: int
    values: dict[str, str]
    retrieved: str | None

    def offering(self, gpus: Mapping[str, GpuSpec]) -> Offering:
        return Offering(
            provider=self.choice("provider", PROVIDERS),
            region=self.text("region"),
            instance_type=self.text("instance_type"),
            vcpus=self.integer("vcpus"),
            memory_gib=self.number("memory_gib"),
            gpu=self.choice("gpu", tuple(gpus), kind="GPU"),
            gpus_per_node=self.integer("gpus_per_node"),
            gpu_memory_gib=self.number("gpu_memory_gib"),
            interconnect=self.choice("interconnect", INTERCONNECTS),
            price_per_hour=self.number("price_per_hour", missing="missing on-demand price"),
            spot_price_per_hour=self.optional_number("spot_price_per_hour"),
            extra=MappingProxyType(
                {
                    "network_gbps": self.number("network_gbps"),
                    "zones": self.zones(),
                    "retrieved": self.retrieved,
                }
            ),
        )

    def error(self, field: str, message: str) -> ValidationError:
        return ValidationError(self.source, message, line=self.line, field=field)

    def text(self, field: str) -> str:
        value = self.values[field]
        if not value:
            raise self.error(field, "missing value")
        return value

    def choice(self, field: str, known: tuple[str, ...], kind: str | None = None) -> str:
        value = self.text(field)
        if value not in known:
            raise self.error(field, f"unknown {kind or field} '{value}'; known: {', '.join(known)}")
        return value

    def integer(self, field: str) -> int:
        value = self._parse(field)
        if value is None:
            raise self.error(field, "missing value")
        if not value.is_integer() or value < 1:
            raise self.error(field, f"must be a whole number >= 1, got '{self.values[field]}'")
        return int(value)

    def number(self, field: str, missing: str = "missing value") -> float:
        value = self.optional_number(field)
        if value is None:
            raise self.error(field, missing)
        return value

    def optional_number(self, field: str) -> float | None:
        value = self._parse(field)
        if value is not None and value <= 0:
            raise self.error(field, f"must be a positive number, got {self.values[field]}")
        return value

    def zones(self) -> tuple[str, ...]:
        zones = tuple(self.values["zones"].split())
        repeated = sorted({z for z in zones if zones.count(z) > 1})
        if repeated:
            raise self.error("zones", f"zone listed twice: {', '.join(repeated)}")
        return zones

    def _parse(self, field: str) -> float | None:
        raw = self.values[field]
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise self.error(field, f"not a number: '{raw}'") from None
        if not math.isfinite(value):
            raise self.error(field, f"must be a finite number, got {raw}")
        return value
