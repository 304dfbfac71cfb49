"""The AWS refresh: GPU VM types, zones and prices from AWS's own APIs (boto3, clients injected).

- EC2 ``DescribeInstanceTypes``: vCPUs, memory and ``GpuInfo`` (types without it are not GPU VMs);
- EC2 ``DescribeInstanceTypeOfferings`` with ``LocationType=availability-zone-id``: the zones that
  offer each type (a type no zone offers can no longer be launched there: left out);
- the Price List Query API (``pricing.get_products``, served from us-east-1): the on-demand Linux
  price of each type in the region (shared tenancy, no pre-installed software, ``Used``
  capacity, the ``RunInstances`` operation);
- EC2 ``DescribeAvailabilityZones`` and ``DescribeSpotPriceHistory`` (``Linux/UNIX``, from now):
  the current spot price of each zone, its zone name mapped to the zone ID the catalog keeps.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cherrypick.catalog.refresh.offers import Notes, ProviderApi, ZoneOffer
from cherrypick.catalog.refresh.rules import EXCLUDED_ACCELERATORS, GPU_KEYS

__all__ = ["API", "AwsClients", "fetch_offers"]

SOURCE = (
    "AWS Price List Query API (pricing.get_products, AmazonEC2, on-demand Linux) and EC2 "
    "DescribeInstanceTypes, DescribeInstanceTypeOfferings (availability-zone-id), "
    "DescribeAvailabilityZones, DescribeSpotPriceHistory (Linux/UNIX)"
)
NOTES = (
    "gpu: GpuInfo's name (a V100 with 32 GiB is the V100-32GB, an A100 with 80 GiB the "
    "A100-80GB); gpu_memory_gib: GpuInfo MiB / 1024 (AWS gives usable memory: A10G 22.35)",
    "spot_price_per_hour: the lowest current zone price of DescribeSpotPriceHistory",
)
_PRICE_FILTERS = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "operation": "RunInstances",
}


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class AwsClients:
    """``pricing``: a boto3 ``pricing`` client (us-east-1); ``ec2``: a boto3 ``ec2`` client for a
    region; ``now``: when spot prices are asked for."""

    pricing: Any
    ec2: Callable[[str], Any]
    now: Callable[[], datetime.datetime] = field(default=_utc_now)


@dataclass(frozen=True)
class _Shape:
    vcpus: int
    memory_gib: float
    gpu: str
    gpus: int
    gpu_memory_gib: float


def fetch_offers(clients: AwsClients, regions: Sequence[str], notes: Notes) -> list[ZoneOffer]:
    """One zone offer per GPU type and zone ID of each region."""
    return [offer for region in regions for offer in _region_offers(clients, region, notes)]


def _region_offers(clients: AwsClients, region: str, notes: Notes) -> list[ZoneOffer]:
    ec2 = clients.ec2(region)
    shapes = _shapes(ec2, notes)
    zones = _offered_zones(ec2, set(shapes))
    prices = _prices(clients.pricing, region, set(shapes), notes)
    spots = _spot_prices(ec2, sorted(zones), clients.now())
    offers = []
    for instance_type in sorted(shapes):
        if not zones.get(instance_type):
            if instance_type in prices:
                notes.count(f"left out: {instance_type} {region}: priced but offered in no zone")
            continue
        shape = shapes[instance_type]
        for zone in zones[instance_type]:
            spot = spots.get((instance_type, zone))
            offers.append(
                _offer(region, zone, instance_type, shape, prices.get(instance_type), spot)
            )
    return offers


def _offer(
    region: str,
    zone: str,
    instance_type: str,
    shape: _Shape,
    price: float | None,
    spot: float | None,
) -> ZoneOffer:
    return ZoneOffer(
        region=region,
        zone=zone,
        instance_type=instance_type,
        vcpus=shape.vcpus,
        memory_gib=shape.memory_gib,
        gpu=shape.gpu,
        gpus_per_node=shape.gpus,
        gpu_memory_gib=shape.gpu_memory_gib,
        price=price,
        spot=spot,
    )


def _pages(call: Callable[..., dict[str, Any]], key: str, **params: Any) -> Iterator[Any]:
    """Every item under ``key`` of a paginated EC2 or pricing call (``NextToken``)."""
    while True:
        answer = call(**params)
        yield from answer.get(key, [])
        token = answer.get("NextToken")
        if not token:
            return
        params = {**params, "NextToken": token}


def _shapes(ec2: Any, notes: Notes) -> dict[str, _Shape]:
    shapes = {}
    for info in _pages(ec2.describe_instance_types, "InstanceTypes"):
        gpus = info.get("GpuInfo", {}).get("Gpus") or []
        if not gpus:
            continue
        name = gpus[0]["Name"]
        if name in EXCLUDED_ACCELERATORS:
            notes.count(f"left out: {EXCLUDED_ACCELERATORS[name]}")
            continue
        mib = gpus[0]["MemoryInfo"]["SizeInMiB"]
        shapes[info["InstanceType"]] = _Shape(
            vcpus=info["VCpuInfo"]["DefaultVCpus"],
            memory_gib=info["MemoryInfo"]["SizeInMiB"] / 1024,
            gpu=_gpu_key(name, mib),
            gpus=sum(g["Count"] for g in gpus),
            gpu_memory_gib=round(mib / 1024, 2),
        )
    return shapes


def _gpu_key(name: str, mib: int) -> str:
    """Our GPU name for GpuInfo's: its name says the model, its memory the variant."""
    if name == "V100" and mib >= 32 * 1024:
        return "V100-32GB"
    if name == "A100" and mib >= 80 * 1024:
        return "A100-80GB"
    return GPU_KEYS.get(name, name)


def _offered_zones(ec2: Any, types: set[str]) -> dict[str, list[str]]:
    zones: dict[str, list[str]] = {}
    offerings = _pages(
        ec2.describe_instance_type_offerings,
        "InstanceTypeOfferings",
        LocationType="availability-zone-id",
    )
    for offering in offerings:
        if offering["InstanceType"] in types:
            zones.setdefault(offering["InstanceType"], []).append(offering["Location"])
    return zones


def _prices(pricing: Any, region: str, types: set[str], notes: Notes) -> dict[str, float]:
    filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}] + [
        {"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in _PRICE_FILTERS.items()
    ]
    listed: dict[str, set[float]] = {}
    for text in _pages(pricing.get_products, "PriceList", ServiceCode="AmazonEC2", Filters=filters):
        product = json.loads(text)
        instance_type = product["product"]["attributes"].get("instanceType")
        if instance_type in types:
            listed.setdefault(instance_type, set()).update(_hourly(product))
    prices = {}
    for instance_type, found in listed.items():
        if len(found) > 1:
            notes.count(
                f"{instance_type} {region}: price list gives {sorted(found)}; kept the lowest"
            )
        if found:
            prices[instance_type] = min(found)
    return prices


def _hourly(product: dict[str, Any]) -> set[float]:
    """The positive hourly USD prices of a product's on-demand terms."""
    found = set()
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = float(dimension.get("pricePerUnit", {}).get("USD", "0"))
            if dimension.get("unit") == "Hrs" and usd > 0:
                found.add(usd)
    return found


def _spot_prices(
    ec2: Any, types: Sequence[str], now: datetime.datetime
) -> dict[tuple[str, str], float]:
    """The latest spot price of each (type, zone ID)."""
    if not types:
        return {}
    ids = {
        z["ZoneName"]: z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"]
    }
    history = _pages(
        ec2.describe_spot_price_history,
        "SpotPriceHistory",
        InstanceTypes=list(types),
        ProductDescriptions=["Linux/UNIX"],
        StartTime=now,
    )
    latest: dict[tuple[str, str], tuple[datetime.datetime, float]] = {}
    for entry in history:
        key = (entry["InstanceType"], ids.get(entry["AvailabilityZone"], entry["AvailabilityZone"]))
        if key not in latest or entry["Timestamp"] > latest[key][0]:
            latest[key] = (entry["Timestamp"], float(entry["SpotPrice"]))
    return {key: price for key, (_, price) in latest.items()}


def _default_clients(account: str | None) -> AwsClients:
    import boto3

    session = boto3.session.Session(profile_name=account)
    return AwsClients(
        pricing=session.client("pricing", region_name="us-east-1"),
        ec2=lambda region: session.client("ec2", region_name=region),
    )


def _errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError


API = ProviderApi(SOURCE, NOTES, _default_clients, fetch_offers, _errors)
