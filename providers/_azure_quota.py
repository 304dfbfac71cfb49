"""Azure's vCPU quotas, as ``quota_shortfall`` and ``doctor`` read them.

A VM draws on two quotas of its region (Azure's names, from ``usage.list(location)``): its size
family's (``standardNCSv3Family``: "Standard NCSv3 Family vCPUs") and the region's total
(``cores``: "Total Regional vCPUs"); a spot VM on the region's low-priority total instead
(``lowPriorityCores``). A size's family is the ``family`` of its entry in ``resource_skus.list``
for the region. Both lists are read once per region.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cherrypick.providers._azure_errors import PROVIDER
from cherrypick.providers.base import Candidate, DoctorCheck, Offering, Placement

from cherrypick.errors import ProvisioningError

__all__ = ["Quota", "Quotas"]

#: ``call(read, region)``: the provider's retrying, classifying call.
Call = Callable[[Callable[[], Any], str], Any]
FIX = "request an increase in the Azure portal (Quotas > Compute, region {region})"


@dataclass(frozen=True)
class Quota:
    """One vCPU quota of a region."""

    label: str
    current: int
    limit: int

    @property
    def free(self) -> int:
        return self.limit - self.current


class Quotas:
    """The subscription's vCPU quotas per region, asked once per region. ``compute()`` gives
    the SDK's compute client."""

    def __init__(self, compute: Callable[[], Any], call: Call, *, spot: bool) -> None:
        self._compute = compute
        self._call = call
        self._spot = spot
        self._usages: dict[str, dict[str, Quota]] = {}
        self._families: dict[str, dict[str, str]] = {}

    def shortfall(self, candidate: Candidate, placement: Placement) -> str | None:
        """Why the region's quotas cannot hold ``candidate``; None if they can or cannot be
        read (the launch itself will then say)."""
        region = placement.region
        need = candidate.offering.vcpus * candidate.nodes
        try:
            quotas = self.drawn_by(region, candidate.offering.instance_type)
        except ProvisioningError:
            return None
        short = next((q for q in quotas if q.free < need), None)
        if short is None:
            return None
        return (
            f"quota '{short.label}' in {region} is {short.limit} vCPUs ({short.current} used),"
            f" needs {need}: {FIX.format(region=region)}"
        )

    def checks(self, region: str, offerings: Sequence[Offering]) -> list[DoctorCheck]:
        """One check per quota the region's offerings draw on (room for one VM of the largest
        size on it), and one per size the region does not offer the subscription."""
        try:
            need = self._largest_per_quota(region, offerings)
            missing = [o.instance_type for o in offerings if not self._offered(region, o)]
        except ProvisioningError as exc:
            fix = "check the subscription's access to Microsoft.Compute there"
            return [DoctorCheck(PROVIDER, f"quota {region}", False, str(exc), fix)]
        return [_quota_check(region, *need[label]) for label in sorted(need)] + [
            DoctorCheck(
                PROVIDER,
                f"size {region} {size}",
                False,
                f"{size} is not offered to this subscription in {region}",
                "leave the region out of the search, or ask Azure support for access",
            )
            for size in sorted(set(missing))
        ]

    def drawn_by(self, region: str, size: str) -> list[Quota]:
        """The quotas a VM of ``size`` draws on in ``region`` (those the region reports)."""
        usages = self._usage(region)
        if self._spot:
            names = ["lowPriorityCores"]
        else:
            family = self._family(region, size)
            names = [family, "cores"] if family else ["cores"]
        return [usages[n.lower()] for n in names if n.lower() in usages]

    def _largest_per_quota(
        self, region: str, offerings: Sequence[Offering]
    ) -> dict[str, tuple[Quota, int, str]]:
        need: dict[str, tuple[Quota, int, str]] = {}
        for offering in offerings:
            for quota in self.drawn_by(region, offering.instance_type):
                if offering.vcpus > need.get(quota.label, (quota, 0, ""))[1]:
                    need[quota.label] = (quota, offering.vcpus, offering.instance_type)
        return need

    def _offered(self, region: str, offering: Offering) -> bool:
        return self._family(region, offering.instance_type) is not None

    def _usage(self, region: str) -> dict[str, Quota]:
        if region not in self._usages:
            usage = self._compute().usage
            listed = self._call(lambda: list(usage.list(region)), region)
            self._usages[region] = {
                str(u.name.value).lower(): Quota(
                    str(u.name.localized_value or u.name.value), int(u.current_value), int(u.limit)
                )
                for u in listed
            }
        return self._usages[region]

    def _family(self, region: str, size: str) -> str | None:
        if region not in self._families:
            skus = self._compute().resource_skus
            wanted = f"location eq '{region}'"
            listed = self._call(lambda: list(skus.list(filter=wanted)), region)
            self._families[region] = {
                str(s.name).lower(): str(s.family)
                for s in listed
                if s.resource_type == "virtualMachines" and s.family
            }
        return self._families[region].get(size.lower())


def _quota_check(region: str, quota: Quota, vcpus: int, size: str) -> DoctorCheck:
    detail = f"{quota.current} of {quota.limit} vCPUs used; one {size} needs {vcpus}"
    ok = quota.free >= vcpus
    fix = "" if ok else FIX.format(region=region)
    return DoctorCheck(PROVIDER, f"quota {region} '{quota.label}'", ok, detail, fix)
