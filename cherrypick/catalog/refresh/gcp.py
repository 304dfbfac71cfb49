"""The GCP refresh: GPU VM types, zones and prices from Google's own APIs (discovery clients).

- Cloud Billing Catalog ``services.skus.list`` of Compute Engine (``services/6F81-5844-456A``,
  the service id cloud.google.com/skus lists for Compute Engine): the hourly USD price of a vCPU
  and a GiB of memory of each machine series, and of each GPU, on demand and spot, per region;
- Compute Engine ``machineTypes.aggregatedList``: each zone's machine types with their vCPUs,
  memory and built-in GPUs (``accelerators``: a2, a3, g2);
- Compute Engine ``acceleratorTypes.aggregatedList``: the GPUs each zone can attach to an N1 VM.

A VM's price is vCPUs x the series' core price + GiB x its RAM price + GPUs x the GPU price, all
from the region's SKUs. A SKU is matched by its whole description (``A2 Instance Core running in
Americas``, ``Nvidia Tesla A100 GPU attached to Spot Preemptible VMs running in ...``), never a
part of it: flex-start and calendar-mode SKUs name the same GPUs at other prices.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cherrypick.catalog.refresh.offers import Notes, ProviderApi, ZoneOffer
from cherrypick.catalog.refresh.rules import gcp_n1_host

__all__ = ["API", "COMPUTE_SERVICE", "GcpClients", "fetch_offers"]

COMPUTE_SERVICE = "services/6F81-5844-456A"
SOURCE = (
    f"GCP Cloud Billing Catalog API (services.skus.list, {COMPUTE_SERVICE}: Compute Engine) and "
    "Compute Engine machineTypes.aggregatedList, acceleratorTypes.aggregatedList"
)
NOTES = (
    "price_per_hour = vCPUs x the series' core SKU + GiB x its RAM SKU + GPUs x the GPU SKU of "
    "the region; the Local SSD that a2-ultragpu and a3 types bundle is billed apart and left out",
    "n1 instance types are named <host>+<count>x<GPU>: n1-standard-(8 x count) with 1, 2, 4 or "
    "8 attachable GPUs, where the zone's acceleratorTypes allow that many",
)
# GPU names of the SKU descriptions and of the accelerator types -> our names (configs/gpus.yaml)
_SKU_GPUS = {
    "Tesla T4": "T4",
    "Tesla V100": "V100",
    "Tesla P100": "P100",
    "Tesla P4": "P4",
    "Tesla K80": "K80",
    "Tesla A100": "A100",
    "A100 80GB": "A100-80GB",
    "L4": "L4",
    "H100 80GB": "H100",
    "H100 80GB Mega": "H100-MEGA",
    "H100 Mega 80GB": "H100-MEGA",
    "H100 80GB Plus": "H100-MEGA",  # SkyPilot's fetch_gcp.py: some regions name A3 Mega's H100 so
    "H200 141GB": "H200",
    "B200": "B200",
}
_ACCELERATORS = {
    "nvidia-tesla-t4": "T4",
    "nvidia-tesla-v100": "V100",
    "nvidia-tesla-p100": "P100",
    "nvidia-tesla-p4": "P4",
    "nvidia-tesla-k80": "K80",
    "nvidia-tesla-a100": "A100",
    "nvidia-a100-80gb": "A100-80GB",
    "nvidia-l4": "L4",
    "nvidia-h100-80gb": "H100",
    "nvidia-h100-mega-80gb": "H100-MEGA",
    "nvidia-h200-141gb": "H200",
    "nvidia-b200": "B200",
}
_PRICED_GPU = {"H100-MEGA": "H100"}  # priced apart, the same GPU in configs/gpus.yaml
_SERIES = {"a2": "A2", "a3": "A3", "g2": "G2", "n1": "N1 Predefined"}
_USAGE = {"OnDemand": "", "Preemptible": "Spot Preemptible "}
_SPOT_GPU = " attached to Spot Preemptible VMs"
_GPU_SKU = re.compile(rf"Nvidia (?P<gpu>.+?) GPU(?P<spot>{_SPOT_GPU})? running in .+")
_HOST_SKU = re.compile(
    r"(?P<spot>Spot Preemptible )?(?P<series>.+?) Instance (?P<part>Core|Ram) running in .+"
)

_PriceKey = tuple[str, str, str, bool]  # (region, "core" | "ram" | "gpu", series or GPU, spot)


@dataclass(frozen=True)
class GcpClients:
    """``billing``: a ``cloudbilling`` v1 discovery client; ``compute``: a ``compute`` v1 one;
    ``project``: the project whose view of the zones is listed."""

    billing: Any
    compute: Any
    project: str


@dataclass(frozen=True)
class _Machine:
    zone: str
    name: str
    vcpus: int
    memory_gib: float
    gpu: str | None  # built-in GPUs (a2, a3, g2); None for an N1 host
    gpus: int

    @property
    def region(self) -> str:
        return self.zone.rsplit("-", 1)[0]


def fetch_offers(clients: GcpClients, regions: Sequence[str], notes: Notes) -> list[ZoneOffer]:
    """One zone offer per GPU VM (built-in or N1 + attached GPUs) and zone of each region."""
    wanted = set(regions)
    prices = _sku_prices(clients.billing, wanted, notes)
    machines = [m for m in _machines(clients, notes) if m.region in wanted]
    attachable = {k: v for k, v in _attachable(clients).items() if k[0].rsplit("-", 1)[0] in wanted}
    offers = [_offer(m, m.name, m.gpu, m.gpus, prices) for m in machines if m.gpu is not None]
    hosts = {(m.zone, m.name): m for m in machines if m.gpu is None}
    for (zone, gpu), most in attachable.items():
        for count in (c for c in (1, 2, 4, 8) if c <= most):
            host = hosts.get((zone, gcp_n1_host(gpu, count) or ""))
            if host is not None:
                offers.append(_offer(host, f"{host.name}+{count}x{gpu}", gpu, count, prices))
    return offers


def _offer(
    machine: _Machine, name: str, gpu: str, count: int, prices: dict[_PriceKey, float]
) -> ZoneOffer:
    return ZoneOffer(
        region=machine.region,
        zone=machine.zone,
        instance_type=name,
        vcpus=machine.vcpus,
        memory_gib=machine.memory_gib,
        gpu=_PRICED_GPU.get(gpu, gpu),
        gpus_per_node=count,
        gpu_memory_gib=None,
        price=_vm_price(machine, gpu, count, prices, spot=False),
        spot=_vm_price(machine, gpu, count, prices, spot=True),
    )


def _vm_price(
    machine: _Machine, gpu: str, count: int, prices: dict[_PriceKey, float], spot: bool
) -> float | None:
    """The VM's hourly price, or None when a SKU it is billed for is missing."""
    series = _SERIES.get(machine.name.split("-")[0], "")
    parts = (
        (prices.get((machine.region, "core", series, spot)), machine.vcpus),
        (prices.get((machine.region, "ram", series, spot)), machine.memory_gib),
        (prices.get((machine.region, "gpu", gpu, spot)), count),
    )
    if any(unit is None for unit, _ in parts):
        return None
    return sum(unit * amount for unit, amount in parts if unit is not None)


def _sku_prices(billing: Any, regions: set[str], notes: Notes) -> dict[_PriceKey, float]:
    """The unit price of each (region, part, series or GPU, spot) the SKUs name unambiguously."""
    found: dict[_PriceKey, set[float]] = {}
    request = billing.services().skus().list(parent=COMPUTE_SERVICE, currencyCode="USD")
    for sku in _paged(request, billing.services().skus(), "skus"):
        for key, price in _sku_keys(sku, regions):
            found.setdefault(key, set()).add(price)
    prices = {}
    for key, listed in found.items():
        if len(listed) == 1:
            prices[key] = listed.pop()
        else:
            what = "GPU" if key[1] == "gpu" else f"{key[1]} of {key[2]}"
            notes.count(f"{key[0]}: several SKUs price the {what} {key[2]} differently: unpriced")
    return prices


def _sku_keys(sku: dict[str, Any], regions: set[str]) -> Iterator[tuple[_PriceKey, float]]:
    category = sku.get("category", {})
    usage = category.get("usageType")
    if category.get("resourceFamily") != "Compute" or usage not in _USAGE:
        return
    described = _described(sku.get("description", ""), spot=usage == "Preemptible")
    if described is None:
        return
    price = _unit_price(sku)
    for region in set(sku.get("serviceRegions", [])) & regions:
        yield (region, *described, usage == "Preemptible"), price


def _described(description: str, spot: bool) -> tuple[str, str] | None:
    """("gpu", our GPU name) or ("core" | "ram", series) of an exactly matching description."""
    gpu = _GPU_SKU.fullmatch(description)
    if gpu is not None and bool(gpu["spot"]) == spot and gpu["gpu"] in _SKU_GPUS:
        return "gpu", _SKU_GPUS[gpu["gpu"]]
    host = _HOST_SKU.fullmatch(description)
    if host is not None and bool(host["spot"]) == spot and host["series"] in _SERIES.values():
        return host["part"].lower(), host["series"]
    return None


def _unit_price(sku: dict[str, Any]) -> float:
    """The first tier's unit price (``units`` + ``nanos``) of the SKU's current pricing."""
    rate = sku["pricingInfo"][0]["pricingExpression"]["tieredRates"][0]["unitPrice"]
    return int(rate.get("units", 0) or 0) + int(rate.get("nanos", 0) or 0) / 1e9


def _paged(request: Any, collection: Any, key: str) -> Iterator[Any]:
    """Every item under ``key`` of a discovery list call, following ``list_next``."""
    while request is not None:
        answer = request.execute()
        yield from answer.get(key, [])
        request = collection.list_next(request, answer)


def _aggregated(collection: Any, project: str, key: str) -> Iterator[tuple[str, Any]]:
    """(zone, item) of an ``aggregatedList`` over every zone, following its pages."""
    request = collection.aggregatedList(project=project)
    while request is not None:
        answer = request.execute()
        for scope, listed in answer.get("items", {}).items():
            for item in listed.get(key, []):
                yield scope.removeprefix("zones/"), item
        request = collection.aggregatedList_next(request, answer)


def _machines(clients: GcpClients, notes: Notes) -> Iterator[_Machine]:
    for zone, item in _aggregated(clients.compute.machineTypes(), clients.project, "machineTypes"):
        series = item["name"].split("-")[0]
        accelerators = item.get("accelerators") or []
        if series not in _SERIES or (series != "n1" and not accelerators):
            continue
        gpu, count = None, 0
        if accelerators:
            kind = accelerators[0]["guestAcceleratorType"]
            if kind not in _ACCELERATORS:
                notes.count(f"left out: {item['name']}: unknown accelerator type '{kind}'")
                continue
            gpu, count = _ACCELERATORS[kind], accelerators[0]["guestAcceleratorCount"]
        memory = item["memoryMb"] / 1024
        yield _Machine(zone, item["name"], item["guestCpus"], memory, gpu, count)


def _attachable(clients: GcpClients) -> dict[tuple[str, str], int]:
    """(zone, our GPU name) -> the most GPUs of that kind an N1 VM of the zone can attach."""
    found = {}
    listed = _aggregated(clients.compute.acceleratorTypes(), clients.project, "acceleratorTypes")
    for zone, item in listed:
        gpu = _ACCELERATORS.get(item["name"])
        if gpu is not None and gcp_n1_host(gpu, 1) is not None:
            found[(zone, gpu)] = int(item.get("maximumCardsPerInstance", 1))
    return found


def _default_clients(account: str | None) -> GcpClients:
    import google.auth
    from googleapiclient import discovery

    credentials, project = google.auth.default()
    chosen = account or project
    if not chosen:
        from cherrypick.errors import InputError

        raise InputError("gcp: no project: give --project or set one with gcloud")
    billing = discovery.build("cloudbilling", "v1", credentials=credentials)
    compute = discovery.build("compute", "v1", credentials=credentials)
    return GcpClients(billing, compute, chosen)


def _errors() -> tuple[type[Exception], ...]:
    from google.auth.exceptions import GoogleAuthError
    from googleapiclient.errors import Error

    return Error, GoogleAuthError


API = ProviderApi(SOURCE, NOTES, _default_clients, fetch_offers, _errors)
