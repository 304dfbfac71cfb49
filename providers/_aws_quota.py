"""The AWS provider's quota checks: which EC2 vCPU quota an instance type counts against, and
what the account's Service Quotas say of it.

EC2 limits running instances per region in vCPUs, one quota per instance family group and
purchase option. The codes are Service Quotas' (service code ``ec2``), as ``aws service-quotas
list-service-quotas --service-code ec2`` lists them and the EC2 user guide's "On-Demand Instance
quotas" page names them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cherrypick.providers.base import Candidate, DoctorCheck, Offering

__all__ = ["Quota", "QuotaReader", "quota_for"]


@dataclass(frozen=True)
class Quota:
    """One EC2 vCPU quota: its Service Quotas code and name."""

    code: str
    name: str


_STANDARD = "Standard (A, C, D, H, I, M, R, T, Z)"
_ON_DEMAND = {
    "p": Quota("L-417A185B", "Running On-Demand P instances"),
    "g": Quota("L-DB2E81BA", "Running On-Demand G and VT instances"),
    "standard": Quota("L-1216C47A", f"Running On-Demand {_STANDARD} instances"),
}
_SPOT = {
    "p": Quota("L-7212CCBC", "All P Spot Instance Requests"),
    "g": Quota("L-3819A6DF", "All G and VT Spot Instance Requests"),
    "standard": Quota("L-34B43A08", f"All {_STANDARD} Spot Instance Requests"),
}
#: Family prefixes (the letters before the generation digit) and their quota group; other
#: families (DL, Inf, Trn, F, X, ...) have quotas of their own that we do not map.
_GROUPS = {"p": "p", "g": "g", "gr": "g", "vt": "g"} | {
    letter: "standard" for letter in "acdhimrtz"
}


def quota_for(instance_type: str, spot: bool) -> Quota | None:
    """The vCPU quota ``instance_type`` (``g5.xlarge``) counts against, or None if unmapped."""
    prefix = re.match(r"([a-z]+)\d", instance_type)
    group = _GROUPS.get(prefix.group(1)) if prefix else None
    if group is None:
        return None
    return (_SPOT if spot else _ON_DEMAND)[group]


class QuotaReader:
    """Reads the account's vCPU quotas, once per (region, quota); ``client_for(region)`` gives a
    ``service-quotas`` client."""

    def __init__(self, client_for: Callable[[str], Any], spot: bool) -> None:
        self._client_for = client_for
        self._spot = spot
        self._values: dict[tuple[str, str], float | None] = {}
        self._lock = threading.Lock()

    def vcpus(self, region: str, quota: Quota) -> float | None:
        """The quota's value in ``region``: the applied one, else AWS's default; None (kept
        too, so a search asks once) when neither can be read."""
        key = (region, quota.code)
        with self._lock:
            if key in self._values:
                return self._values[key]
        value = self._read(region, quota)
        with self._lock:
            self._values[key] = value
        return value

    def shortfall(self, candidate: Candidate, region: str) -> str | None:
        """Why the quota cannot hold ``candidate`` in ``region``, or None (it can, or unknown)."""
        quota = quota_for(candidate.offering.instance_type, self._spot)
        if quota is None:
            return None
        value = self.vcpus(region, quota)
        need = candidate.offering.vcpus * candidate.nodes
        if value is None or value >= need:
            return None
        return (
            f"quota '{quota.name}' in {region} is {value:g} vCPUs, needs {need}:"
            f" request an increase in Service Quotas ({quota.code})"
        )

    def checks(self, offerings: Sequence[Offering]) -> list[DoctorCheck]:
        """One doctor check per (region, quota) behind ``offerings``: does the quota hold the
        largest one machine of them?"""
        needs: dict[tuple[str, Quota], int] = {}
        for offering in offerings:
            quota = quota_for(offering.instance_type, self._spot)
            if quota is not None:
                key = (offering.region, quota)
                needs[key] = max(needs.get(key, 0), offering.vcpus)
        return [
            self._check(region, quota, need)
            for (region, quota), need in sorted(
                needs.items(), key=lambda item: (item[0][0], item[0][1].code)
            )
        ]

    def _check(self, region: str, quota: Quota, need: int) -> DoctorCheck:
        name = f"quota {quota.code} in {region}"
        value = self.vcpus(region, quota)
        fix = (
            f"aws service-quotas request-service-quota-increase --region {region}"
            f" --service-code ec2 --quota-code {quota.code} --desired-value {need}"
        )
        if value is None:
            detail = f"'{quota.name}' could not be read (servicequotas:GetServiceQuota denied?)"
            return DoctorCheck("aws", name, False, detail, "check it in the Service Quotas console")
        detail = f"'{quota.name}': {value:g} vCPUs; the largest offering needs {need}"
        return DoctorCheck("aws", name, value >= need, detail, "" if value >= need else fix)

    def _read(self, region: str, quota: Quota) -> float | None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client_for(region)
        # GetServiceQuota answers NoSuchResourceException for a quota never changed from its
        # default in some accounts; the default is then the value that applies.
        for ask in (client.get_service_quota, client.get_aws_default_service_quota):
            try:
                return float(ask(ServiceCode="ec2", QuotaCode=quota.code)["Quota"]["Value"])
            except (BotoCoreError, ClientError, KeyError, TypeError, ValueError):
                continue
        return None
