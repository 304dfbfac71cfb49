"""The Azure refresh: GPU VM sizes, zones and prices from Azure's own APIs.

- the Retail Prices API (``https://prices.azure.com/api/retail/prices``, no credentials; one
  page of at most 1000 items per answer, the next one at ``NextPageLink``): the hourly Linux
  consumption price of each size in the region, and its spot price (``skuName`` ending in
  ``Spot``); Windows and low-priority meters are skipped;
- Compute ``resource_skus.list`` (azure-mgmt-compute): which sizes the subscription can launch in
  the region and in which zones (a ``Location`` restriction ``NotAvailableForSubscription`` drops
  the size there, a ``Zone`` one drops those zones), with their vCPUs, memory and GPU count.

The GPU model of a size is in its name only: ``_SIZES`` maps the GPU size families of the Azure
size pages (MicrosoftDocs/azure-docs articles/virtual-machines/sizes/gpu-accelerated) to ours.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cherrypick.catalog.refresh.offers import Notes, ProviderApi, ZoneOffer

__all__ = ["API", "AzureClients", "fetch_offers", "prices_url", "sku_lister"]

PRICES = "https://prices.azure.com/api/retail/prices"
SOURCE = (
    "Azure Retail Prices API (prices.azure.com/api/retail/prices, Virtual Machines, "
    "Consumption, Linux) and Compute resource SKUs (resource_skus.list)"
)
NOTES = (
    "gpu: from the size's family (Azure GPU size pages); sizes that hold a fraction of a GPU "
    "(NVadsA10 v5 below NV36) are left out; gpu_memory_gib: the configs/gpus.yaml figure",
    "zones: the resource SKU's zones in the region less those restricted for the subscription",
)
# Whole-GPU Azure sizes -> our GPU names (first match wins).
_SIZES = (
    (r"Standard_NC\d+as_T4_v3", "T4"),
    (r"Standard_NC\d+r?s_v3", "V100"),
    (r"Standard_NC\d+ads_A100_v4", "A100-80GB"),
    (r"Standard_NC\d+adis?_H100_v5", "H100-NVL"),
    (r"Standard_ND96asr_v4", "A100"),
    (r"Standard_ND96amsr_A100_v4", "A100-80GB"),
    (r"Standard_ND96isr_H100_v5", "H100"),
    (r"Standard_ND96isr_H200_v5", "H200"),
    (r"Standard_ND40rs_v2", "V100-32GB"),
    (r"Standard_NV(36|72)adm?s_A10_v5", "A10"),
    (r"Standard_NV\d+s_v3", "M60"),
    (r"Standard_NC\d+r?(_Promo)?", "K80"),
)
_NOT_FOR_YOU = "NotAvailableForSubscription"


@dataclass(frozen=True)
class AzureClients:
    """``fetch``: GET a URL, return its JSON; ``resource_skus``: the compute resource SKUs of a
    region (``sku_lister(ComputeManagementClient(...))``)."""

    fetch: Callable[[str], Mapping[str, Any]]
    resource_skus: Callable[[str], Iterable[Any]]


@dataclass(frozen=True)
class _Size:
    name: str
    vcpus: int
    memory_gib: float
    gpu: str
    gpus: int
    zones: tuple[str, ...]


def prices_url(region: str) -> str:
    """The first Retail Prices page of the region's VM consumption prices."""
    query = (
        f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' "
        "and priceType eq 'Consumption'"
    )
    return f"{PRICES}?{urllib.parse.urlencode({'$filter': query})}"


def fetch_offers(clients: AzureClients, regions: Sequence[str], notes: Notes) -> list[ZoneOffer]:
    """One zone offer per launchable GPU size and zone (or region, without zones)."""
    offers = []
    for region in regions:
        sizes = _sizes(clients.resource_skus(region), region, notes)
        prices, spots = _prices(clients.fetch, region, notes)
        for size in sizes:
            price, spot = prices.get(size.name), spots.get(size.name)
            for zone in size.zones or (None,):
                offers.append(_offer(region, zone, size, price, spot))
        for name in sorted(set(prices) - {s.name for s in sizes}):
            if _gpu_of(name) is not None:
                notes.count(f"left out: {name} {region}: priced but not launchable there")
    return offers


def _offer(
    region: str, zone: str | None, size: _Size, price: float | None, spot: float | None
) -> ZoneOffer:
    return ZoneOffer(
        region=region,
        zone=zone,
        instance_type=size.name,
        vcpus=size.vcpus,
        memory_gib=size.memory_gib,
        gpu=size.gpu,
        gpus_per_node=size.gpus,
        gpu_memory_gib=None,
        price=price,
        spot=spot,
    )


def _gpu_of(name: str) -> str | None:
    return next((gpu for pattern, gpu in _SIZES if re.fullmatch(pattern, name)), None)


def _sizes(skus: Iterable[Any], region: str, notes: Notes) -> list[_Size]:
    sizes = []
    for sku in skus:
        gpu = _gpu_of(str(sku.name))
        if sku.resource_type != "virtualMachines" or gpu is None:
            continue
        if region not in (sku.locations or []):
            continue
        blocked = _restricted(sku, region)
        if blocked is None:
            notes.count(f"left out: {sku.name} {region}: not available for this subscription")
            continue
        caps = {str(c.name): str(c.value) for c in sku.capabilities or []}
        zones = tuple(z for z in _zones(sku, region) if z not in blocked)
        sizes.append(
            _Size(
                sku.name, int(caps["vCPUs"]), float(caps["MemoryGB"]), gpu, int(caps["GPUs"]), zones
            )
        )
    return sizes


def _zones(sku: Any, region: str) -> list[str]:
    return sorted(
        str(z)
        for info in sku.location_info or []
        if info.location == region
        for z in info.zones or []
    )


def _restricted(sku: Any, region: str) -> set[str] | None:
    """The zones restricted for the subscription, or None when the whole region is."""
    zones: set[str] = set()
    for restriction in sku.restrictions or []:
        if restriction.reason_code != _NOT_FOR_YOU:  # the SDK's enums equal their values
            continue
        info = restriction.restriction_info
        locations = (info.locations if info else None) or restriction.values or []
        if restriction.type == "Location" and region in locations:
            return None
        if restriction.type == "Zone" and info is not None:
            zones.update(str(z) for z in info.zones or [])
    return zones


def _prices(
    fetch: Callable[[str], Mapping[str, Any]], region: str, notes: Notes
) -> tuple[dict[str, float], dict[str, float]]:
    """On-demand and spot hourly Linux prices by size name (the newest meter of each)."""
    newest: dict[tuple[str, bool], tuple[str, float]] = {}
    for item in _items(fetch, prices_url(region)):
        kind = _kind(item)
        if kind is None or item.get("armRegionName") != region:
            continue
        key, started = (item["armSkuName"], kind), str(item.get("effectiveStartDate", ""))
        if key not in newest or started > newest[key][0]:
            newest[key] = (started, float(item["retailPrice"]))
    on_demand = {name: price for (name, spot), (_, price) in newest.items() if not spot}
    spot = {name: price for (name, is_spot), (_, price) in newest.items() if is_spot}
    return on_demand, spot


def _kind(item: Mapping[str, Any]) -> bool | None:
    """True for a Linux spot meter, False for a Linux on-demand one, None for anything else."""
    sku, product = str(item.get("skuName", "")), str(item.get("productName", ""))
    if "Windows" in product or sku.endswith("Low Priority") or not item.get("armSkuName"):
        return None
    if item.get("type") != "Consumption" or item.get("unitOfMeasure") != "1 Hour":
        return None
    return sku.endswith(" Spot")


def _items(fetch: Callable[[str], Mapping[str, Any]], url: str) -> Iterator[Mapping[str, Any]]:
    next_url: str | None = url
    while next_url:
        page = fetch(next_url)
        yield from page.get("Items", [])
        next_url = page.get("NextPageLink")


def sku_lister(compute: Any) -> Callable[[str], Iterable[Any]]:
    """The ``resource_skus`` of an ``azure.mgmt.compute.ComputeManagementClient``."""
    return lambda region: compute.resource_skus.list(filter=f"location eq '{region}'")


def _get_json(url: str) -> Mapping[str, Any]:
    with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 (a fixed https URL)
        data: Mapping[str, Any] = json.loads(answer.read().decode("utf-8"))
        return data


def _default_clients(account: str | None) -> AzureClients:
    import os

    from azure.identity import DefaultAzureCredential
    from azure.mgmt.compute import ComputeManagementClient

    subscription = account or os.environ.get("AZURE_SUBSCRIPTION_ID")
    if not subscription:
        from cherrypick.errors import InputError

        raise InputError("azure: no subscription: give --subscription or set AZURE_SUBSCRIPTION_ID")
    compute = ComputeManagementClient(DefaultAzureCredential(), subscription)
    return AzureClients(fetch=_get_json, resource_skus=sku_lister(compute))


def _errors() -> tuple[type[Exception], ...]:
    from azure.core.exceptions import AzureError

    return AzureError, OSError, ValueError


API = ProviderApi(SOURCE, NOTES, _default_clients, fetch_offers, _errors)
