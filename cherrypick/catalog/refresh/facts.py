"""Reading the catalog facts (verbatim SkyPilot VM catalog rows) into one record per VM and zone.

The three clouds' files differ in column order and in shape: AWS and Azure list one row per VM
type and zone (Azure: per region), GCP lists host rows and accelerator rows that a GPU VM sums.
Every documented data problem is handled here or in ``rows`` and counted in ``Notes``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cherrypick.catalog.refresh.offers import Notes, ZoneOffer
from cherrypick.catalog.refresh.rules import (
    EXCLUDED_ACCELERATORS,
    GPU_KEYS,
    azure_count,
    azure_gpu,
    gcp_fixed_accelerator,
    gcp_n1_host,
)
from cherrypick.errors import ValidationError

__all__ = ["Notes", "ZoneOffer", "read_aws", "read_azure", "read_gcp"]

_AcceleratorKey = tuple[str, str, int]  # GCP accelerator rows: zone, accelerator name, count
_UNPAIRED_HOST = {
    False: "left out: host rows of a GPU machine type whose zone has no accelerator row for it",
    True: "left out: n1 host rows other than n1-standard-(8 x GPUs), the one host we pair with "
    "1, 2, 4 or 8 attachable GPUs (8 vCPUs and 30 GB per GPU, within GCP's per-GPU vCPU limits)",
}


@dataclass(frozen=True)
class _Line:
    source: str
    number: int
    row: dict[str, str]

    def error(self, field: str, message: str) -> ValidationError:
        return ValidationError(self.source, message, line=self.number, field=field)

    def number_of(self, field: str) -> float | None:
        raw = self.row[field].strip()
        if not raw:
            return None
        try:
            return float(raw)
        except ValueError:
            raise self.error(field, f"not a number: '{raw}'") from None

    def positive(self, field: str) -> float:
        value = self.number_of(field)
        if value is None or value <= 0:
            raise self.error(field, f"expected a positive number, got '{self.row[field]}'")
        return value

    def count_of(self, field: str) -> int:
        value = self.number_of(field)
        if value is None or not value.is_integer() or value < 1:
            raise self.error(field, f"expected a whole number >= 1, got '{self.row[field]}'")
        return int(value)

    def gpu_memory_gib(self) -> float | None:
        match = re.search(r"'SizeInMiB': (\d+)", self.row.get("GpuInfo", ""))
        return None if match is None else round(int(match.group(1)) / 1024, 2)

    def gpu(self, notes: Notes) -> str | None:
        """Our GPU key for the row's accelerator; None (counted) for excluded accelerators."""
        name = self.row["AcceleratorName"].strip()
        if name in EXCLUDED_ACCELERATORS:
            notes.count(f"left out: {EXCLUDED_ACCELERATORS[name]}")
            return None
        if name not in GPU_KEYS:
            message = (
                f"unknown accelerator '{name}' (map it in cherrypick/catalog/refresh/rules.py)"
            )
            raise self.error("AcceleratorName", message)
        return GPU_KEYS[name]


def _lines(path: Path) -> Iterator[_Line]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield _Line(path.name, reader.line_num, row)


def read_aws(path: Path, notes: Notes) -> list[ZoneOffer]:
    offers = []
    for line in _lines(path):
        gpu = line.gpu(notes)
        if gpu is not None:
            count, zone = line.count_of("AcceleratorCount"), line.row["AvailabilityZone"]
            offers.append(_offer(line, gpu, count, zone))
    return offers


def read_azure(path: Path, notes: Notes) -> list[ZoneOffer]:
    offers = []
    for line in _lines(path):
        gpu = line.gpu(notes)
        if gpu is None:
            continue
        name, listed = line.row["InstanceType"], line.count_of("AcceleratorCount")
        count = azure_count(name, listed)
        if count != listed:
            notes.count(f"{name}: AcceleratorCount {listed} corrected to {count} (Azure docs)")
        if azure_gpu(name, gpu) != gpu:
            notes.count(f"{name}: GPU '{gpu}' is the {azure_gpu(name, gpu)} (Azure docs)")
        offers.append(_offer(line, azure_gpu(name, gpu), count, None))  # Azure rows: no zone
    return offers


def _offer(line: _Line, gpu: str, count: int, zone: str | None) -> ZoneOffer:
    return ZoneOffer(
        region=line.row["Region"],
        zone=zone,
        instance_type=line.row["InstanceType"],
        vcpus=line.count_of("vCPUs"),
        memory_gib=line.positive("MemoryGiB"),
        gpu=gpu,
        gpus_per_node=count,
        gpu_memory_gib=line.gpu_memory_gib(),
        price=line.number_of("Price"),
        spot=line.number_of("SpotPrice"),
    )


def read_gcp(path: Path, notes: Notes) -> list[ZoneOffer]:
    """Host rows plus the accelerator rows of the same zone and count, summed (GCP bills both)."""
    hosts, accelerators = _split_gcp(path)
    used: set[_AcceleratorKey] = set()
    offers: list[ZoneOffer] = []
    for host in hosts:
        pairings = [(n, k) for n, k in _gcp_pairings(host, accelerators) if k in accelerators]
        if not pairings:
            notes.count(_UNPAIRED_HOST[host.row["InstanceType"].startswith("n1-")])
        for name, key in pairings:
            used.add(key)
            gpus = [(a, gpu) for a in accelerators[key] if (gpu := a.gpu(notes)) is not None]
            offers.extend(_gcp_offer(host, accelerator, name, gpu) for accelerator, gpu in gpus)
    for key, lines in accelerators.items():
        if key not in used:
            what = f"left out: {key[1]} x{key[2]} accelerator rows: no host row pairs with them"
            notes.count(what, len(lines))
    return offers


def _split_gcp(path: Path) -> tuple[list[_Line], dict[_AcceleratorKey, list[_Line]]]:
    hosts: list[_Line] = []
    accelerators: dict[_AcceleratorKey, list[_Line]] = {}
    for line in _lines(path):
        if line.row["InstanceType"].strip():
            hosts.append(line)
        else:  # an accelerator row: no InstanceType, priced per zone and GPU count
            row, count = line.row, line.count_of("AcceleratorCount")
            key = (row["AvailabilityZone"], row["AcceleratorName"], count)
            accelerators.setdefault(key, []).append(line)
    return hosts, accelerators


def _gcp_pairings(
    host: _Line, accelerators: dict[_AcceleratorKey, list[_Line]]
) -> Iterator[tuple[str, _AcceleratorKey]]:
    """(our instance type name, accelerator key) for each GPU VM this host row makes."""
    machine, zone = host.row["InstanceType"], host.row["AvailabilityZone"]
    try:
        fixed = gcp_fixed_accelerator(machine)
    except KeyError:
        raise host.error("InstanceType", f"unknown GCP machine type '{machine}'") from None
    if fixed is not None:
        yield machine, (zone, *fixed)
        return
    for key_zone, accelerator, count in accelerators:
        if key_zone == zone and gcp_n1_host(accelerator, count) == machine:
            yield f"{machine}+{count}x{GPU_KEYS[accelerator]}", (key_zone, accelerator, count)


def _gcp_offer(host: _Line, accelerator: _Line, name: str, gpu: str) -> ZoneOffer:
    prices = (host.number_of("Price"), accelerator.number_of("Price"))
    spots = (host.number_of("SpotPrice"), accelerator.number_of("SpotPrice"))
    return ZoneOffer(
        region=host.row["Region"],
        zone=host.row["AvailabilityZone"],
        instance_type=name,
        vcpus=host.count_of("vCPUs"),
        memory_gib=host.positive("MemoryGiB"),
        gpu=gpu,
        gpus_per_node=accelerator.count_of("AcceleratorCount"),
        gpu_memory_gib=accelerator.gpu_memory_gib(),
        price=_sum(prices),
        spot=_sum(spots),
    )


def _sum(parts: tuple[float | None, ...]) -> float | None:
    """The sum, or None when a part is missing (a VM needs every part it is billed for)."""
    return None if None in parts else sum(p for p in parts if p is not None)
