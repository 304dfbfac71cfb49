"""A scripted, stateful Azure Resource Manager for the Azure provider's tests.

``FakeAzure`` is an ``azure.core`` ``HttpTransport``: the real SDK clients send it their
requests (after their real policies: auth header, serialisation) and it answers with
``azure.core.rest`` responses built the way azure-core's own requests transport builds them
(``HttpResponseImpl``, read at once unless the SDK asked to stream). A legacy
``pipeline.transport.HttpResponse`` would not do: the mgmt SDKs stream long-running operations'
first answer and call ``iter_bytes`` on it.

It keeps resource groups and the resources in them (security groups, virtual networks, public
addresses, network interfaces, VMs) as ARM's JSON, answers creates as ARM does (``201`` with an
``Azure-AsyncOperation`` header; the operation reads ``InProgress`` then ``Succeeded`` or
``Failed`` with an error), deletes resource groups as ARM does (``202`` with a ``Location`` to
poll, the group and everything in it ``Deleting`` for ``delete_lag`` requests, then gone), and
records every request with its JSON body. Errors are scripted: per VM create in a placement
(``fail_vm_create``) or per request (``fail_request``), with ARM's real codes and messages.

``harness()`` is what the shared provider contract suite sees of it
(``tests/test_provider_contract.py``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import case_insensitive_dict
from cherrypick.providers.azure import AzureProvider
from cherrypick.providers.base import (
    TAG_SEARCH,
    Candidate,
    CloudOptions,
    Offering,
    Placement,
)

from cherrypick.catalog import load_catalog

SUBSCRIPTION = "00000000-0000-0000-0000-0000000000aa"
ARM = "https://management.azure.com"
SSH_CIDR = "203.0.113.7/32"
REGIONS = ("eastus", "westus2", "southcentralus")
SIZE = "Standard_NC4as_T4_v3"
FAMILY = "standardNCASv3_T4Family"
FAMILY_LABEL = "Standard NCASv3_T4 Family vCPUs"
#: The family's sizes (Azure's "NCasT4_v3 series"), all of which the bundled catalog lists.
T4_SIZES = ("Standard_NC4as_T4_v3", "Standard_NC8as_T4_v3", "Standard_NC16as_T4_v3")
T4_SIZES += ("Standard_NC64as_T4_v3",)
_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request"}
_REASONS |= {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}
_REASONS |= {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
_NAME = "[^/]+"
_GROUP = rf"/subscriptions/(?P<sub>{_NAME})/resourcegroups/(?P<group>{_NAME})"
_SUB = rf"/subscriptions/(?P<sub>{_NAME})"


@dataclass(frozen=True)
class ArmError:
    """An error as ARM sends it: HTTP status, ``error.code``, ``error.message``. With
    ``during_operation`` the create is accepted and its operation ends ``Failed`` with it."""

    status: int
    code: str
    message: str
    during_operation: bool = False
    details: tuple[tuple[str, str], ...] = ()

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = [{"code": c, "message": m} for c, m in self.details]
        return {"error": error}


def quota_exceeded(region: str, family: str = FAMILY, need: int = 4) -> ArmError:
    """Compute's answer to a VM create past the family's quota (its message names the family)."""
    return ArmError(
        409,
        "QuotaExceeded",
        f"Operation could not be completed as it results in exceeding approved {family} Cores"
        f" quota. Additional details - Deployment Model: Resource Manager, Location: {region},"
        f" Current Limit: 0, Current Usage: 0, Additional Required: {need}, (Minimum) New Limit"
        f" Required: {need}. Submit a request for Quota increase at https://aka.ms/ProdportalCRP",
    )


def allocation_failed() -> ArmError:
    return ArmError(
        200,
        "AllocationFailed",
        "Allocation failed. We do not have sufficient capacity for the requested VM size in this"
        " region. Read more about improving likelihood of allocation success at"
        " http://aka.ms/allocation-guidance",
        during_operation=True,
    )


def sku_not_available(region: str, size: str = SIZE) -> ArmError:
    return ArmError(
        409,
        "SkuNotAvailable",
        f"The requested VM size for resource 'Following SKUs have failed for Capacity"
        f" Restrictions: {size}' is currently not available in location '{region}'. Please try"
        " another size or deploy to a different location or different zone.",
    )


INVALID_TOKEN = ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
THROTTLED = ArmError(
    429, "TooManyRequests", "The request is being throttled as the limit has been reached."
)


@dataclass
class Recorded:
    """One request the fake answered: method, path (as sent), query and JSON body."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class _Script:
    error: ArmError
    times: int
    method: str = ""
    path: str = ""
    region: str | None = None
    zone: str | None = None


@dataclass
class _Operation:
    """A long-running operation: ``polls`` more ``InProgress`` answers, then done."""

    polls: int
    error: ArmError | None = None
    finish: Callable[[], None] | None = None
    deleting: str | None = None


@dataclass
class _Group:
    name: str
    location: str
    tags: dict[str, str]
    state: str = "Succeeded"
    delete_in: int = 0
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeAzure(HttpTransport):  # type: ignore[type-arg]
    """The scripted ARM (see the module docstring). ``vm_polls``: how many ``InProgress``
    answers a VM create's operation gives first; ``delete_lag``: how many further requests a
    deleted group stays ``Deleting``."""

    def __init__(
        self, subscription: str = SUBSCRIPTION, *, vm_polls: int = 1, delete_lag: int = 0
    ) -> None:
        self.subscription = subscription
        self.vm_polls = vm_polls
        self.delete_lag = delete_lag
        self.groups: dict[str, _Group] = {}
        self.requests: list[Recorded] = []
        self.slept: list[float] = []
        self.usages: dict[str, list[dict[str, Any]]] = {r: default_usages() for r in REGIONS}
        self.skus = [sku(size, FAMILY, r) for size in T4_SIZES for r in REGIONS]
        self._scripts: list[_Script] = []
        self._operations: dict[str, _Operation] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # -- scripting and inspecting -----------------------------------------------------------

    def fail_vm_create(
        self, region: str, zone: str | None, error: ArmError, times: int = 1
    ) -> None:
        """The next ``times`` VM creates in (region, zone) answer ``error``."""
        self._scripts.append(_Script(error, times, "PUT", "virtualmachines/", region, zone))

    def fail_request(self, method: str, path_part: str, error: ArmError, times: int = 1) -> None:
        """The next ``times`` requests of ``method`` whose path contains ``path_part`` (case
        ignored) answer ``error``."""
        self._scripts.append(_Script(error, times, method, path_part.lower()))

    def set_quota(self, region: str, name: str, limit: int, current: int = 0) -> None:
        for usage in self.usages[region]:
            if usage["name"]["value"] == name:
                usage |= {"limit": limit, "currentValue": current}

    def bodies(self, method: str, path_end: str) -> list[Any]:
        """The JSON bodies sent with ``method`` to paths ending in ``path_end`` (case ignored)."""
        with self._lock:
            return [
                r.body
                for r in self.requests
                if r.method == method and r.path.lower().endswith(path_end.lower())
            ]

    def calls(self, method: str, path_part: str) -> list[Recorded]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == method and path_part.lower() in r.path.lower()
            ]

    def vms(self) -> dict[str, dict[str, Any]]:
        """Every VM the fake holds, by ``{group}/{name}``."""
        with self._lock:
            return {
                f"{g.name}/{r['name']}": r
                for g in self.groups.values()
                for r in g.resources.values()
                if r["type"] == "Microsoft.Compute/virtualMachines"
            }

    def live_ids(self) -> set[str]:
        """Ids (the provider's ``{group}/{vm}``) of the VMs not gone (a deleting one counts)."""
        return set(self.vms())

    def groups_tagged(self, tag: str, value: str) -> list[str]:
        with self._lock:
            return sorted(g.name for g in self.groups.values() if g.tags.get(tag) == value)

    def set_power(self, machine_id: str, power: str | None) -> None:
        """The VM's power state as its instance view will say (None: none yet)."""
        self.vms()[machine_id]["power"] = power

    # -- the transport --------------------------------------------------------------------

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __exit__(self, *args: object) -> None:
        pass

    def sleep(self, duration: float) -> None:
        """The SDK's own pauses (polling delays) are recorded, never slept."""
        self.slept.append(duration)

    def send(self, request: Any, **kwargs: Any) -> Any:
        url = urlsplit(request.url)
        query = dict(parse_qsl(url.query))
        body = _json(request.content)
        with self._lock:
            self.requests.append(Recorded(request.method, url.path, query, body))
            self._advance_deletes()
            status, answer, headers = self._answer(request.method, url.path, query, body)
        return _response(request, status, answer, headers, stream=bool(kwargs.get("stream")))

    def _answer(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        scripted = self._scripted(method, path, body)
        if scripted is not None and not scripted.during_operation:
            return scripted.status, scripted.body(), {}
        for pattern, handler in self._routes():
            found = re.fullmatch(pattern, path, re.IGNORECASE)
            if found is None:
                continue
            names = found.groupdict()
            if names.get("sub", self.subscription) != self.subscription:
                return _error(404, "SubscriptionNotFound", f"subscription {names['sub']} not found")
            return handler(method, names, query, body, scripted)
        raise AssertionError(f"the fake does not serve {method} {path}")

    def _routes(self) -> list[tuple[str, Callable[..., tuple[int, Any, dict[str, str]]]]]:
        return [
            (r"/fake/operations/(?P<op>\d+)", self._operation),
            (rf"{_SUB}/resourcegroups", self._group_list),
            (_GROUP, self._group),
            (rf"{_GROUP}/providers/microsoft\.compute/virtualmachines", self._vm_list),
            (rf"{_GROUP}/providers/(?P<kind>[^/]+/[^/]+)/(?P<name>{_NAME})", self._resource),
            (
                rf"{_SUB}/providers/microsoft\.compute/locations/(?P<loc>{_NAME})/usages",
                self._usage,
            ),
            (rf"{_SUB}/providers/microsoft\.compute/skus", self._skus),
        ]

    def _scripted(self, method: str, path: str, body: Any) -> ArmError | None:
        for script in self._scripts:
            if script.times <= 0 or script.method != method or script.path not in path.lower():
                continue
            if script.region is not None and not _placed(body, script.region, script.zone):
                continue
            script.times -= 1
            return script.error
        return None

    # -- resource groups ------------------------------------------------------------------

    def _group_list(self, method: str, names: Any, query: dict[str, str], *_: Any) -> Any:
        wanted = re.fullmatch(r"tagName eq '(.*)' and tagValue eq '(.*)'", query.get("$filter", ""))
        groups = [
            g
            for g in self.groups.values()
            if wanted is None or g.tags.get(wanted.group(1)) == wanted.group(2)
        ]
        return 200, {"value": [self._group_json(g) for g in groups]}, {}

    def _group(self, method: str, names: Any, query: Any, body: Any, *_: Any) -> Any:
        key = names["group"].lower()
        group = self.groups.get(key)
        if method == "PUT":
            created = group is None
            if created:
                group = self.groups[key] = _Group(names["group"], body["location"], {})
            assert group is not None
            group.tags = dict(body.get("tags") or {})
            return (201 if created else 200), self._group_json(group), {}
        if group is None:
            return _error(
                404,
                "ResourceGroupNotFound",
                f"Resource group '{names['group']}' could not be found.",
            )
        if method == "GET":
            return 200, self._group_json(group), {}
        if method == "DELETE":
            return self._delete_group(group)
        raise AssertionError(f"the fake does not serve {method} on a resource group")

    def _delete_group(self, group: _Group) -> tuple[int, Any, dict[str, str]]:
        if group.state != "Deleting":
            group.state, group.delete_in = "Deleting", self.delete_lag
            for resource in group.resources.values():
                resource["properties"]["provisioningState"] = "Deleting"
        location = self._start(_Operation(0, deleting=group.name.lower()))
        self._advance_deletes(tick=False)
        return 202, None, {"Location": location, "Retry-After": "0"}

    def _advance_deletes(self, tick: bool = True) -> None:
        for key, group in list(self.groups.items()):
            if group.state == "Deleting":
                if group.delete_in <= 0:
                    del self.groups[key]
                elif tick:
                    group.delete_in -= 1

    def _group_json(self, group: _Group) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{self.subscription}/resourceGroups/{group.name}",
            "name": group.name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": group.location,
            "tags": group.tags,
            "properties": {"provisioningState": group.state},
        }

    # -- resources ------------------------------------------------------------------------

    def _resource(self, method: str, names: Any, query: Any, body: Any, scripted: Any) -> Any:
        group = self.groups.get(names["group"].lower())
        if group is None:
            return _error(
                404,
                "ResourceGroupNotFound",
                f"Resource group '{names['group']}' could not be found.",
            )
        kind, name = names["kind"], names["name"]
        key = f"{kind}/{name}".lower()
        if method == "PUT":
            return self._create(group, kind, name, body, scripted)
        resource = group.resources.get(key)
        if resource is None:
            return _error(404, "ResourceNotFound", f"The Resource '{kind}/{name}' was not found.")
        return 200, self._view(resource, query.get("$expand") == "instanceView"), {}

    def _create(self, group: _Group, kind: str, name: str, body: Any, scripted: Any) -> Any:
        if group.state == "Deleting":
            return _error(
                409,
                "ResourceGroupBeingDeleted",
                f"The resource group '{group.name}' is being deleted.",
            )
        where = f"/subscriptions/{self.subscription}/resourceGroups/{group.name}"
        rid = f"{where}/providers/{kind}/{name}"
        missing = [ref for ref in _references(body) if not self._exists(ref)]
        if missing:
            return _error(
                400,
                "InvalidResourceReference",
                f"Resource {missing[0]} referenced by {rid} was not found.",
            )
        resource = json.loads(json.dumps(body)) | {
            "id": rid,
            "name": name,
            "type": _KINDS.get(kind.lower(), kind),
        }
        resource["properties"] = dict(resource.get("properties") or {}) | {
            "provisioningState": "Creating"
        }
        self._fill(resource)
        group.resources[f"{kind}/{name}".lower()] = resource
        is_vm = resource["type"] == "Microsoft.Compute/virtualMachines"

        def finish() -> None:
            failed = scripted is not None
            resource["properties"]["provisioningState"] = "Failed" if failed else "Succeeded"
            if is_vm and not failed:
                resource["power"] = "running"

        operation = _Operation(self.vm_polls if is_vm else 0, scripted, finish)
        headers = {"Azure-AsyncOperation": self._start(operation)}
        return 201, self._view(resource, False), headers

    def _exists(self, resource_id: str) -> bool:
        parts = resource_id.split("/")
        group = self.groups.get(parts[4].lower()) if len(parts) > 8 else None
        if group is None:
            return False
        key = "/".join(parts[6:9]).lower()
        return key in group.resources and (
            len(parts) == 9 or _has_subnet(group.resources[key], parts)
        )

    def _fill(self, resource: dict[str, Any]) -> None:
        """What Azure adds to a resource it creates: addresses, subnet ids."""
        number = next(self._ids)
        props = resource["properties"]
        if resource["type"] == "Microsoft.Network/publicIPAddresses":
            props["ipAddress"] = f"20.1.{number // 256}.{number % 256}"
        if resource["type"] == "Microsoft.Network/networkInterfaces":
            for config in props.get("ipConfigurations", []):
                config["properties"]["privateIPAddress"] = f"10.0.0.{4 + number % 250}"
        if resource["type"] == "Microsoft.Network/virtualNetworks":
            for subnet in props.get("subnets", []):
                subnet["id"] = f"{resource['id']}/subnets/{subnet['name']}"

    def _view(self, resource: dict[str, Any], instance_view: bool) -> dict[str, Any]:
        shown = json.loads(json.dumps({k: v for k, v in resource.items() if k != "power"}))
        if instance_view:
            state = resource["properties"]["provisioningState"].lower()
            statuses = [{"code": f"ProvisioningState/{state}"}]
            if resource.get("power"):
                statuses.append({"code": f"PowerState/{resource['power']}"})
            shown["properties"]["instanceView"] = {"statuses": statuses}
        return shown

    def _vm_list(self, method: str, names: Any, *_: Any) -> Any:
        group = self.groups.get(names["group"].lower())
        if group is None:
            return _error(
                404,
                "ResourceGroupNotFound",
                f"Resource group '{names['group']}' could not be found.",
            )
        vms = [
            self._view(r, False)
            for r in group.resources.values()
            if r["type"] == "Microsoft.Compute/virtualMachines"
        ]
        return 200, {"value": vms}, {}

    # -- operations, quotas, SKUs ---------------------------------------------------------

    def _start(self, operation: _Operation) -> str:
        number = str(next(self._ids))
        self._operations[number] = operation
        return f"{ARM}/fake/operations/{number}?api-version=fake"

    def _operation(self, method: str, names: Any, *_: Any) -> Any:
        operation = self._operations[names["op"]]
        if operation.deleting is not None:
            gone = operation.deleting not in self.groups
            return (200, None, {}) if gone else (202, None, {"Retry-After": "0"})
        if operation.polls > 0:
            operation.polls -= 1
            return 200, {"status": "InProgress"}, {}
        if operation.finish is not None:
            operation.finish()
            operation.finish = None
        if operation.error is not None:
            return 200, {"status": "Failed"} | operation.error.body(), {}
        return 200, {"status": "Succeeded"}, {}

    def _usage(self, method: str, names: Any, *_: Any) -> Any:
        return 200, {"value": self.usages.get(names["loc"].lower(), [])}, {}

    def _skus(self, method: str, names: Any, query: dict[str, str], *_: Any) -> Any:
        wanted = re.fullmatch(r"location eq '(.*)'", query.get("$filter", ""))
        region = wanted.group(1).lower() if wanted else None
        listed = [s for s in self.skus if region is None or region in s["locations"]]
        return 200, {"value": listed}, {}


_KINDS = {
    "microsoft.compute/virtualmachines": "Microsoft.Compute/virtualMachines",
    "microsoft.network/publicipaddresses": "Microsoft.Network/publicIPAddresses",
    "microsoft.network/networkinterfaces": "Microsoft.Network/networkInterfaces",
    "microsoft.network/virtualnetworks": "Microsoft.Network/virtualNetworks",
    "microsoft.network/networksecuritygroups": "Microsoft.Network/networkSecurityGroups",
}


def default_usages() -> list[dict[str, Any]]:
    """A fresh pay-as-you-go subscription's vCPU quotas, roughly (Azure's usage names)."""
    return [
        _usage_json("cores", "Total Regional vCPUs", 100),
        _usage_json("lowPriorityCores", "Total Regional Low-priority vCPUs", 100),
        _usage_json(FAMILY, FAMILY_LABEL, 24),
    ]


def _usage_json(name: str, label: str, limit: int) -> dict[str, Any]:
    return {
        "name": {"value": name, "localizedValue": label},
        "currentValue": 0,
        "limit": limit,
        "unit": "Count",
    }


def sku(size: str, family: str, region: str) -> dict[str, Any]:
    """A ``resource_skus.list`` entry, as far as the provider reads it."""
    return {
        "resourceType": "virtualMachines",
        "name": size,
        "tier": "Standard",
        "family": family,
        "locations": [region],
        "restrictions": [],
    }


def _placed(body: Any, region: str, zone: str | None) -> bool:
    if not isinstance(body, dict) or body.get("location", "").lower() != region.lower():
        return False
    return zone is None or body.get("zones") == [zone]


def _references(body: Any) -> list[str]:
    """The resource ids a create body points at (``{"id": ...}`` anywhere in it)."""
    if isinstance(body, dict):
        own = [body["id"]] if isinstance(body.get("id"), str) and len(body) <= 2 else []
        inner = [v for k, v in body.items() if k != "imageReference"]  # images live elsewhere
        return own + [ref for value in inner for ref in _references(value)]
    if isinstance(body, list):
        return [ref for value in body for ref in _references(value)]
    return []


def _has_subnet(vnet: dict[str, Any], parts: list[str]) -> bool:
    names = {s["name"].lower() for s in vnet["properties"].get("subnets", [])}
    return len(parts) == 11 and parts[9].lower() == "subnets" and parts[10].lower() in names


def _json(content: Any) -> Any:
    if content in (None, b"", ""):
        return None
    return json.loads(content)


def _error(status: int, code: str, message: str) -> tuple[int, Any, dict[str, str]]:
    return status, ArmError(status, code, message).body(), {}


def _response(
    request: Any, status: int, body: Any, headers: dict[str, str], *, stream: bool
) -> Any:
    """An ``azure.core.rest`` response, as azure-core's requests transport makes one: the body
    behind a stream generator, read at once unless the caller streams."""
    data = b"" if body is None else json.dumps(body).encode()
    all_headers = dict(headers)
    if data:
        all_headers["Content-Type"] = "application/json; charset=utf-8"
    response = HttpResponseImpl(
        request=request,
        internal_response=_Closable(),
        status_code=status,
        reason=_REASONS.get(status, "Unknown"),
        content_type=all_headers.get("Content-Type"),
        headers=case_insensitive_dict(all_headers),
        stream_download_generator=lambda **_: iter([data] if data else []),
    )
    if not stream:
        response.read()
    return response


class _Closable:
    """The "connection" behind a response: closing it is all the SDK does with it."""

    def close(self) -> None:
        pass


class FakeCredential:
    """A token credential; ``refuse`` makes it fail as ``DefaultAzureCredential`` does when no
    login is found."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes += scopes
        if self.refuse:
            raise ClientAuthenticationError(
                "DefaultAzureCredential failed to retrieve a token from the included credentials."
            )
        return AccessToken("fake-token", int(time.time()) + 3600)


class FakeClock:
    """Time that moves only when slept through, recording each pause."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def provider(
    fake: FakeAzure, clock: FakeClock | None = None, *, credential: Any = None, **cloud: Any
) -> AzureProvider:
    """The provider over ``fake`` (``cloud``: ``CloudOptions`` fields): no network, no
    credential or subscription from the environment, no real sleeping."""
    clock = clock or FakeClock()
    return AzureProvider(
        CloudOptions(**({"ssh_cidr": SSH_CIDR} | cloud)),
        credential=credential or FakeCredential(),
        subscription_id=SUBSCRIPTION,
        transport=fake,
        sleep=clock.sleep,
        clock=clock,
        polling_interval=0,
    )


def offering_in(region: str) -> Offering:
    """Standard_NC4as_T4_v3 (one T4) as the bundled catalog lists it in eastus or westus2;
    in another region (southcentralus, which the catalog leaves out), the same figures there."""
    listed = {o.region: o for o in load_catalog(["azure"]) if o.instance_type == SIZE}
    found = listed.get(region) or dataclasses.replace(listed["westus2"], region=region)
    return found


@dataclass
class AzureHarness:
    """What the shared contract suite needs of a provider (``tests/test_provider_contract.py``).
    Azure's catalog lists no zones: a placement is a region, and ``alternatives`` (the same
    size in westus2 and southcentralus) give the failover its other placements."""

    fake: FakeAzure
    clock: FakeClock
    provider: AzureProvider
    candidate: Candidate
    pair: Candidate
    alternatives: list[Candidate]
    error_kinds: frozenset[str] = frozenset({"capacity", "quota", "credentials", "transient"})

    def fail(self, placement: Placement, kind: str, times: int = 1) -> None:
        """The next ``times`` VM creates in ``placement`` answer Azure's error of ``kind``:
        capacity: the create's operation ends ``AllocationFailed``; quota: ``QuotaExceeded``
        for the family (409); credentials: 401 ``InvalidAuthenticationToken``; transient: 429
        ``TooManyRequests``."""
        errors = {
            "capacity": allocation_failed(),
            "quota": quota_exceeded(placement.region),
            "credentials": INVALID_TOKEN,
            "transient": THROTTLED,
        }
        self.fake.fail_vm_create(placement.region, placement.zone, errors[kind], times)

    def live_ids(self) -> set[str]:
        return self.fake.live_ids()

    def leftovers(self, search_tag: str) -> list[str]:
        return [f"resource group {g}" for g in self.fake.groups_tagged(TAG_SEARCH, search_tag)]


@contextmanager
def harness() -> Iterator[AzureHarness]:
    """The provider over a fresh fake, with Standard_NC4as_T4_v3 (one T4) in eastus."""
    fake, clock = FakeAzure(), FakeClock()
    home = offering_in("eastus")
    others = [Candidate(offering_in(r), 1) for r in REGIONS if r != "eastus"]
    azure = provider(fake, clock)
    yield AzureHarness(fake, clock, azure, Candidate(home, 1), Candidate(home, 2), others)
