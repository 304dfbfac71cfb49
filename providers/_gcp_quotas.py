"""The GCP provider's quota reading and ``doctor``: Compute Engine quotas are listed by
``regions.get`` (per region: ``NVIDIA_T4_GPUS``, ``PREEMPTIBLE_NVIDIA_T4_GPUS``, ``CPUS``...)
and ``projects.get`` (project-wide: ``GPUS_ALL_REGIONS``), each a ``{metric, limit, usage}``
(GCP docs, "Allocation quotas", cloud.google.com/compute/resource-usage).

A machine needs both its GPU type's regional quota and ``GPUS_ALL_REGIONS``. Spot machines count
against the ``PREEMPTIBLE_`` quota where the region grants one, else against the standard one
(same page, "Preemptible quotas"). Each table is read once and kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from cherrypick.providers._gcp_shapes import machine_shape, quota_metric
from cherrypick.providers.base import Candidate, DoctorCheck, Offering

from cherrypick.errors import CherrypickError, ProvisioningError

__all__ = ["QUOTA_URL", "Quota", "QuotaBook"]

QUOTA_URL = "https://console.cloud.google.com/iam-admin/quotas"
ALL_REGIONS = "GPUS_ALL_REGIONS"
_CREDENTIALS_FIX = (
    "run 'gcloud auth application-default login' (or set GOOGLE_APPLICATION_CREDENTIALS to a"
    " service account key file), and set clouds.gcp.project or run 'gcloud config set project"
    " <id>'"
)
_API_FIX = "enable the Compute Engine API: gcloud services enable compute.googleapis.com"
_READ_FIX = "grant the account the Compute Viewer role (roles/compute.viewer) on the project"


class Quota(NamedTuple):
    limit: float
    usage: float


Call = Callable[[Callable[[Any, str], Any]], Mapping[str, Any]]
"""Runs one API request (built from the compute client and the project id)."""


class QuotaBook:
    """The project's quota tables, read on first need (``None``: the project's own)."""

    def __init__(self, provider: str, call: Call, spot: bool) -> None:
        self.provider = provider
        self._call = call
        self._spot = spot
        self._tables: dict[str | None, Mapping[str, Quota]] = {}
        self._unreadable: set[str | None] = set()

    def table(self, region: str | None) -> Mapping[str, Quota]:
        """The quotas of ``region`` (None: the project's), read once; raises when unreadable."""
        if region not in self._tables:
            if region is None:
                answer = self._call(lambda c, p: c.projects().get(project=p))
            else:
                answer = self._call(lambda c, p: c.regions().get(project=p, region=region))
            self._tables[region] = _quotas(answer)
        return self._tables[region]

    def shortfall(self, candidate: Candidate, region: str) -> str | None:
        """Why the quotas cannot hold ``candidate`` in ``region``; None if they can or cannot
        be read (a search then just tries)."""
        offering = candidate.offering
        need = offering.gpus_per_node * candidate.nodes
        try:
            metric = quota_metric(machine_shape(offering))
        except CherrypickError:
            return None
        if metric is None or need == 0:
            return None
        for where, wanted in ((region, metric), (None, ALL_REGIONS)):
            found = self._readable(where, wanted)
            if found is not None and found[1].limit < need:
                name, quota = found
                place = f"in {where}" if where else "over all regions"
                return (
                    f"quota '{name}' {place} is {quota.limit:g} GPUs, needs {need}: request an"
                    f" increase at {QUOTA_URL}"
                )
        return None

    def doctor(self, offerings: Sequence[Offering]) -> list[DoctorCheck]:
        """Credentials first (``projects.get``); with them, one check per (region, GPU quota)
        behind ``offerings`` and one of ``GPUS_ALL_REGIONS``."""
        credentials = self._credentials_check()
        if not credentials.ok:
            return [credentials]
        needs: dict[tuple[str, str], int] = {}
        for offering in offerings:
            try:
                metric = quota_metric(machine_shape(offering))
            except CherrypickError:
                continue
            if metric is not None:
                key = (offering.region, metric)
                needs[key] = max(needs.get(key, 0), offering.gpus_per_node)
        checks = [credentials]
        checks += [self._check(region, metric, n) for (region, metric), n in sorted(needs.items())]
        if needs:
            checks.append(self._check(None, ALL_REGIONS, max(needs.values())))
        return checks

    def _credentials_check(self) -> DoctorCheck:
        name = "credentials"
        try:
            self.table(None)
        except ProvisioningError as exc:
            fix = _API_FIX if exc.code == "accessNotConfigured" else _CREDENTIALS_FIX
            return DoctorCheck(self.provider, name, False, str(exc), fix)
        return DoctorCheck(self.provider, name, True, "Compute Engine accepts the credentials")

    def _check(self, region: str | None, metric: str, need: int) -> DoctorCheck:
        place = f"in {region}" if region else "over all regions"
        try:
            name, quota = self._pick(self.table(region), metric)
        except ProvisioningError as exc:
            return DoctorCheck(self.provider, f"{metric} {place}", False, str(exc), _READ_FIX)
        check = f"{name} {place}"
        if quota is None:
            detail = f"{region or 'the project'} lists no {metric} quota: not checked"
            return DoctorCheck(self.provider, check, True, detail)
        detail = f"limit {quota.limit:g}, in use {quota.usage:g}; an offering needs {need}"
        if quota.limit >= need:
            return DoctorCheck(self.provider, check, True, detail)
        fix = f"request a quota increase at {QUOTA_URL} for {name} {place}"
        return DoctorCheck(self.provider, check, False, detail, fix)

    def _readable(self, region: str | None, metric: str) -> tuple[str, Quota] | None:
        """The quota a machine counts against, None when it cannot be read (asked once)."""
        if region in self._unreadable:
            return None
        try:
            name, quota = self._pick(self.table(region), metric)
        except ProvisioningError:
            self._unreadable.add(region)
            return None
        return None if quota is None else (name, quota)

    def _pick(self, table: Mapping[str, Quota], metric: str) -> tuple[str, Quota | None]:
        preemptible = f"PREEMPTIBLE_{metric}"
        if self._spot and metric != ALL_REGIONS and table.get(preemptible, Quota(0, 0)).limit > 0:
            return preemptible, table[preemptible]
        return metric, table.get(metric)


def _quotas(answer: Mapping[str, Any]) -> dict[str, Quota]:
    return {
        str(q["metric"]): Quota(float(q.get("limit", 0)), float(q.get("usage", 0)))
        for q in answer.get("quotas", [])
        if "metric" in q
    }
