"""A stateful fake of Compute Engine v1 behind googleapiclient's ``http`` protocol, and the
GCP harness of the provider contract suite.

``FakeCompute`` is what ``discovery.build("compute", "v1", http=fake, static_discovery=True)``
talks to: the real client (from its bundled discovery document, offline) serialises every
request, and the fake answers ``request(uri, method, body, headers)`` with
``(httplib2.Response, bytes)`` as ``googleapiclient.http.HttpMock`` does. It keeps instances,
firewalls, operations and quotas, records every request, and answers injected failures the
way Compute Engine does: an operation that ends ``DONE`` with ``error.errors[].code``, or an
HTTP error with ``error.errors[].reason``.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import httplib2
from cherrypick.providers import _cloud
from cherrypick.providers.base import Candidate, CloudOptions, Offering, Placement
from cherrypick.providers.gcp import GcpProvider
from googleapiclient import discovery
from googleapiclient import http as googleapiclient_http

PROJECT = "test-project"
REGION = "us-central1"
ZONES = ("us-central1-a", "us-central1-b", "us-central1-c")
OTHER_ZONES = ("europe-west4-a", "europe-west4-b")
#: What each zone offers (machine types and accelerator types), as the aggregated lists say.
MACHINE_TYPES = ("n1-standard-8", "n1-standard-16", "g2-standard-4", "a2-highgpu-1g")
ACCELERATORS = ("nvidia-tesla-t4", "nvidia-l4", "nvidia-tesla-a100")
SSH_CIDR = "203.0.113.7/32"


@dataclass(frozen=True)
class Recorded:
    """One request the client sent: method, path after ``projects/``, query, JSON body."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class _Scripted:
    where: str
    kind: str
    times: int
    after: int


class FakeCompute:
    """Compute Engine v1 for one project, in memory (see the module docstring)."""

    def __init__(self, project: str = PROJECT, zones: tuple[str, ...] = ZONES + OTHER_ZONES):
        self.project = project
        self.zones = zones
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.firewalls: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.region_quotas: dict[str, dict[str, tuple[float, float]]] = {
            region: {"CPUS": (96, 0), "NVIDIA_T4_GPUS": (8, 0), "NVIDIA_L4_GPUS": (8, 0)}
            for region in {z.rsplit("-", 1)[0] for z in zones}
        }
        self.project_quotas: dict[str, tuple[float, float]] = {"GPUS_ALL_REGIONS": (16, 0)}
        #: ``instances.get`` answers before a new instance is RUNNING (PROVISIONING, STAGING).
        self.boot_gets = 2
        self.page_size = 500
        self._scripted: list[_Scripted] = []
        self._ids = itertools.count(1)

    # -- what tests use -----------------------------------------------------------------------

    def fail(self, where: str, kind: str, times: int = 1, after: int = 0) -> None:
        """The next ``times`` inserts in ``where`` (a zone or a region), after ``after`` more
        that succeed, fail with ``kind``: capacity, capacity_details, quota, quota_all_regions,
        quota_sync, credentials, unauthenticated, transient, invalid."""
        self._scripted.append(_Scripted(where, kind, times, after))

    def stop(self, zone: str, name: str) -> None:
        """The machine powered itself off: GCP keeps a stopped (TERMINATED) instance."""
        self.instances[(zone, name)]["status"] = "TERMINATED"

    def bodies(self, method: str, pattern: str) -> list[dict[str, Any]]:
        """The JSON bodies of the requests whose path matches ``pattern``."""
        return [
            r.body or {}
            for r in self.requests
            if r.method == method and re.fullmatch(pattern, r.path)
        ]

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for r in self.requests if r.method == method and re.fullmatch(pattern, r.path))

    # -- the http protocol --------------------------------------------------------------------

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        redirections: int = 1,
        connection_type: Any = None,
    ) -> tuple[httplib2.Response, bytes]:
        parts = urlsplit(uri)
        path = parts.path.split(f"/compute/v1/projects/{self.project}", 1)[-1].strip("/")
        query = dict(parse_qsl(parts.query))
        payload = json.loads(body) if body else None
        self.requests.append(Recorded(method, path, query, payload))
        status, content = self._route(method, path, query, payload)
        response = httplib2.Response({"status": str(status), "content-type": "application/json"})
        return response, json.dumps(content).encode()

    def close(self) -> None:
        return None

    def _route(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        for pattern, verb, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                return handler(*match.groups(), query=query, body=body)  # type: ignore[no-any-return]
        return _error(404, "notFound", f"no route {method} {path}")

    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("", "GET", self._project),
            (r"regions/([^/]+)", "GET", self._region),
            (r"zones/([^/]+)/instances", "POST", self._insert),
            (r"zones/([^/]+)/instances/([^/]+)", "GET", self._get),
            (r"zones/([^/]+)/instances/([^/]+)", "DELETE", self._delete),
            (r"zones/([^/]+)/operations/([^/]+)", "GET", self._operation),
            (r"global/operations/([^/]+)", "GET", self._global_operation),
            (r"aggregated/instances", "GET", self._aggregated_instances),
            (r"aggregated/(machineTypes|acceleratorTypes)", "GET", self._aggregated_types),
            (r"global/firewalls", "POST", self._insert_firewall),
            (r"global/firewalls/([^/]+)", "GET", self._get_firewall),
            (r"global/firewalls/([^/]+)", "PATCH", self._patch_firewall),
            (r"global/firewalls/([^/]+)", "DELETE", self._delete_firewall),
        ]

    # -- instances ----------------------------------------------------------------------------

    def _insert(self, zone: str, *, body: Any, **_: Any) -> tuple[int, dict[str, Any]]:
        name = body["name"]
        failure = self._next_failure(zone)
        if failure is not None and failure in _SYNC_ERRORS:
            return _SYNC_ERRORS[failure](self.project, zone, name)
        if failure is not None:
            return 200, self._new_operation("insert", name, zone, _OPERATION_ERRORS[failure](zone))
        if (zone, name) in self.instances:
            return _error(409, "alreadyExists", f"The resource '{name}' already exists")
        self.instances[(zone, name)] = {
            **copy.deepcopy(body),
            "id": str(next(self._ids)),
            "zone": self._zone_url(zone),
            "status": "PROVISIONING",
            "gets": 0,
        }
        return 200, self._new_operation("insert", name, zone)

    def _get(self, zone: str, name: str, **_: Any) -> tuple[int, dict[str, Any]]:
        instance = self.instances.get((zone, name))
        if instance is None:
            return _error(404, "notFound", f"The resource '{name}' was not found")
        self._advance(instance)
        return 200, self._public(instance)

    def _delete(self, zone: str, name: str, **_: Any) -> tuple[int, dict[str, Any]]:
        if self.instances.pop((zone, name), None) is None:
            return _error(404, "notFound", f"The resource '{name}' was not found")
        return 200, self._new_operation("delete", name, zone)

    def _advance(self, instance: dict[str, Any]) -> None:
        if instance["status"] not in ("PROVISIONING", "STAGING"):
            return
        instance["gets"] += 1
        if instance["gets"] > self.boot_gets:
            instance["status"] = "RUNNING"
            nic = instance["networkInterfaces"][0]
            nic["networkIP"] = f"10.128.0.{instance['id']}"
            nic["accessConfigs"][0]["natIP"] = f"198.51.100.{instance['id']}"
        elif instance["gets"] == self.boot_gets:
            instance["status"] = "STAGING"

    def _public(self, instance: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in instance.items() if k != "gets"}

    def _aggregated_instances(self, *, query: dict[str, str], **_: Any) -> tuple[int, Any]:
        wanted = dict(re.findall(r'labels\.([a-z0-9_-]+) = "([^"]*)"', query.get("filter", "")))
        found = [
            (zone, self._public(i))
            for (zone, _name), i in sorted(self.instances.items())
            if all(i.get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        start = int(query.get("pageToken", "0"))
        page = found[start : start + self.page_size]
        items: dict[str, Any] = {
            f"zones/{z}": {"warning": {"code": "NO_RESULTS_ON_PAGE"}} for z in self.zones
        }
        for zone, instance in page:
            items[f"zones/{zone}"].setdefault("instances", []).append(instance)
            items[f"zones/{zone}"].pop("warning", None)
        answer: dict[str, Any] = {"kind": "compute#instanceAggregatedList", "items": items}
        if start + self.page_size < len(found):
            answer["nextPageToken"] = str(start + self.page_size)
        return 200, answer

    def _aggregated_types(
        self, resource: str, *, query: dict[str, str], **_: Any
    ) -> tuple[int, Any]:
        names = MACHINE_TYPES if resource == "machineTypes" else ACCELERATORS
        wanted = re.findall(r'name = "([^"]*)"', query.get("filter", ""))
        items: dict[str, Any] = {}
        for zone in self.zones:
            found = [n for n in names if not wanted or n in wanted]
            if found:
                # Compute Engine names a machine type's zone, but links an accelerator's.
                where = zone if resource == "machineTypes" else self._zone_url(zone)
                listed = [{"name": n, "zone": where} for n in found]
                items[f"zones/{zone}"] = {resource: listed}
        return 200, {"items": items}

    # -- firewalls ----------------------------------------------------------------------------

    def _insert_firewall(self, *, body: Any, **_: Any) -> tuple[int, dict[str, Any]]:
        if body["name"] in self.firewalls:
            return _error(409, "alreadyExists", f"The resource '{body['name']}' already exists")
        self.firewalls[body["name"]] = dict(body)
        return 200, self._new_operation("insert", body["name"], None)

    def _get_firewall(self, name: str, **_: Any) -> tuple[int, dict[str, Any]]:
        if name not in self.firewalls:
            return _error(404, "notFound", f"The resource '{name}' was not found")
        return 200, self.firewalls[name]

    def _patch_firewall(self, name: str, *, body: Any, **_: Any) -> tuple[int, dict[str, Any]]:
        if name not in self.firewalls:
            return _error(404, "notFound", f"The resource '{name}' was not found")
        self.firewalls[name].update(body)
        return 200, self._new_operation("patch", name, None)

    def _delete_firewall(self, name: str, **_: Any) -> tuple[int, dict[str, Any]]:
        if self.firewalls.pop(name, None) is None:
            return _error(404, "notFound", f"The resource '{name}' was not found")
        return 200, self._new_operation("delete", name, None)

    # -- operations, quotas -------------------------------------------------------------------

    def _new_operation(
        self, kind: str, target: str, zone: str | None, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """An operation, RUNNING when returned; the first read finds it DONE (with ``error``)."""
        name = f"operation-{next(self._ids)}"
        operation: dict[str, Any] = {
            "kind": "compute#operation",
            "name": name,
            "operationType": kind,
            "targetLink": target,
            "status": "RUNNING",
        }
        if zone is not None:
            operation["zone"] = self._zone_url(zone)
        self.operations[name] = {
            **operation,
            "status": "DONE",
            **({"error": error} if error else {}),
        }
        return operation

    def _operation(self, zone: str, name: str, **_: Any) -> tuple[int, dict[str, Any]]:
        return self._global_operation(name)

    def _global_operation(self, name: str, **_: Any) -> tuple[int, dict[str, Any]]:
        if name not in self.operations:
            return _error(404, "notFound", f"The resource '{name}' was not found")
        return 200, self.operations[name]

    def _region(self, region: str, **_: Any) -> tuple[int, dict[str, Any]]:
        if region not in self.region_quotas:
            return _error(404, "notFound", f"The resource 'regions/{region}' was not found")
        zones = [self._zone_url(z) for z in self.zones if z.startswith(f"{region}-")]
        return 200, {
            "name": region,
            "zones": zones,
            "quotas": _quota_list(self.region_quotas[region]),
        }

    def _project(self, **_: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"name": self.project, "quotas": _quota_list(self.project_quotas)}

    def _next_failure(self, zone: str) -> str | None:
        for scripted in self._scripted:
            if scripted.where in (zone, zone.rsplit("-", 1)[0]):
                if scripted.after > 0:
                    scripted.after -= 1
                    return None
                scripted.times -= 1
                if scripted.times == 0:
                    self._scripted.remove(scripted)
                return scripted.kind
        return None

    def _zone_url(self, zone: str) -> str:
        return f"https://www.googleapis.com/compute/v1/projects/{self.project}/zones/{zone}"


def _quota_list(quotas: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    return [{"metric": m, "limit": limit, "usage": usage} for m, (limit, usage) in quotas.items()]


def _error(status: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    """An error body as Compute Engine sends it (``error.errors[].reason``)."""
    errors = [{"message": message, "domain": "global", "reason": reason}]
    return status, {"error": {"code": status, "message": message, "errors": errors}}


def _quota_error(metric: str, where: str) -> dict[str, Any]:
    quota = {"metricName": f"compute.googleapis.com/{metric.lower()}", "limit": 0}
    return {
        "code": "QUOTA_EXCEEDED",
        "message": f"Quota '{metric}' exceeded.  Limit: 0.0 {where}.",
        "errorDetails": [{"quotaInfo": quota}],
    }


def _exhausted(code: str, zone: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": f"The zone 'projects/{PROJECT}/zones/{zone}' does not have enough resources"
        " available to fulfill the request.  Try a different zone, or try again later.",
    }


#: Failures an insert's operation ends with (``error.errors[]``).
_OPERATION_ERRORS = {
    "capacity": lambda zone: {"errors": [_exhausted("ZONE_RESOURCE_POOL_EXHAUSTED", zone)]},
    "capacity_details": lambda zone: {
        "errors": [_exhausted("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", zone)]
    },
    "quota": lambda zone: {
        "errors": [_quota_error("NVIDIA_T4_GPUS", f"in region {zone.rsplit('-', 1)[0]}")]
    },
    "quota_all_regions": lambda zone: {"errors": [_quota_error("GPUS_ALL_REGIONS", "globally")]},
}
#: Failures the insert request itself answers (HTTP errors).
_SYNC_ERRORS = {
    "quota_sync": lambda project, zone, name: _error(
        403, "quotaExceeded", "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally."
    ),
    "credentials": lambda project, zone, name: _error(
        403,
        "forbidden",
        f"Required 'compute.instances.create' permission for"
        f" 'projects/{project}/zones/{zone}/instances/{name}'",
    ),
    "unauthenticated": lambda project, zone, name: _error(
        401, "required", "Request is missing required authentication credential."
    ),
    "transient": lambda project, zone, name: _error(503, "backendError", "Backend Error"),
    "invalid": lambda project, zone, name: _error(
        400, "invalid", "Invalid value for field 'resource.machineType'"
    ),
}


def compute_client(http: Any) -> Any:
    """The real compute v1 client over ``http``, from the bundled discovery document."""
    return discovery.build("compute", "v1", http=http, static_discovery=True)


@contextmanager
def library_sleep_recorded() -> Iterator[list[float]]:
    """googleapiclient's own retry pauses, recorded instead of slept (the provider turns the
    library's retries off, so tests assert this stays empty)."""
    slept: list[float] = []
    stub = SimpleNamespace(sleep=slept.append)
    with mock.patch.object(googleapiclient_http, "time", stub):
        yield slept


def provider_over(fake: Any, options: CloudOptions | None = None, **kwargs: Any) -> GcpProvider:
    """A GcpProvider over ``fake`` (a FakeCompute or an HttpMockSequence); nothing sleeps."""
    kwargs.setdefault("sleep", lambda s: None)
    return GcpProvider(
        options or CloudOptions(ssh_cidr=SSH_CIDR),
        compute=compute_client(fake),
        project=PROJECT,
        **kwargs,
    )


#: The bundled catalog's n1-standard-8+1xT4 rows: on-demand and spot $/h per region.
T4_PRICES = {REGION: (0.73, 0.2363), "europe-west4": (0.78584, 0.29564)}


def t4_candidate(nodes: int = 1, region: str = REGION, zones: tuple[str, ...] = ZONES) -> Candidate:
    """n1-standard-8 with one T4, as the bundled catalog lists it, in the fake's zones."""
    price, spot = T4_PRICES[region]
    offering = Offering(
        provider="gcp",
        region=region,
        instance_type="n1-standard-8+1xT4",
        vcpus=8,
        memory_gib=30.0,
        gpu="T4",
        gpus_per_node=1,
        gpu_memory_gib=16.0,
        interconnect="pcie",
        price_per_hour=price,
        spot_price_per_hour=spot,
        extra={"network_gbps": 16.0, "zones": zones},
    )
    return Candidate(offering, nodes)


@dataclass
class GcpHarness:
    """What the provider contract suite drives (see tests/test_provider_contract.py)."""

    provider: GcpProvider
    fake: FakeCompute
    candidate: Candidate = field(default_factory=t4_candidate)
    pair: Candidate = field(default_factory=lambda: t4_candidate(2))
    #: The same machine in another region, where a trial goes once a region is ruled out.
    alternatives: list[Candidate] = field(
        default_factory=lambda: [t4_candidate(1, "europe-west4", OTHER_ZONES)]
    )
    error_kinds: frozenset[str] = frozenset({"capacity", "quota", "credentials", "transient"})

    def fail(self, placement: Placement, kind: str, times: int = 1) -> None:
        self.fake.fail(placement.zone or placement.region, kind, times)

    def live_ids(self) -> set[str]:
        return {f"{zone}/{name}" for zone, name in self.fake.instances}

    def leftovers(self, search_tag: str) -> list[str]:
        prefix = _cloud.resource_name(search_tag, "")
        return [f"firewall rule {n}" for n in self.fake.firewalls if n.startswith(f"{prefix}-")]


@contextmanager
def harness() -> Iterator[GcpHarness]:
    """A GcpProvider over a FakeCompute, with googleapiclient's own retry sleep stubbed."""
    fake = FakeCompute()
    with library_sleep_recorded() as slept:
        yield GcpHarness(provider_over(fake), fake)
    assert slept == [], "googleapiclient retried on its own"
