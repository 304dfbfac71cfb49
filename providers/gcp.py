"""The GCP provider: Compute Engine machines through google-api-python-client (compute v1).

A trial's machines are ``instances.insert`` calls in one zone, each polled through its zone
operation to ``DONE``; an operation that ends with an error is classified like a refused call
(``providers/_gcp_errors.py``). Each machine boots a Deep Learning VM image with the search's
SSH key in its metadata, GPUs attached where the machine type does not carry them (N1), and
``maxRunDuration`` so that the cloud deletes it if its controller dies. One firewall rule per
search lets the controller reach port 22 of machines carrying the rule's network tag.

Instance ids are ``{zone}/{name}``: every Compute Engine call on an instance needs its zone.
A GCP instance that is ``TERMINATED`` is only stopped (its disk is kept and billed), so it is
reported ``stopping`` until ``terminate_instances`` deletes it; only a deleted one (404) is
``terminated``.

API calls (serialised, retried, operations polled) are ``providers/_gcp_api.py``'s; quotas
and ``doctor`` are ``providers/_gcp_quotas.py``'s. The SDK is imported on first use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any

from cherrypick.providers import _cloud
from cherrypick.providers._gcp_api import ComputeApi
from cherrypick.providers._gcp_errors import ALREADY_EXISTS, NOT_FOUND, operation_error
from cherrypick.providers._gcp_quotas import QuotaBook
from cherrypick.providers._gcp_shapes import (
    DEFAULT_USER,
    MachineShape,
    firewall_body,
    instance_body,
    instance_name,
    instance_of,
    instance_state,
    is_ready,
    label_filter,
    labels,
    machine_shape,
    region_of,
    source_image,
)
from cherrypick.providers.base import (
    TAG_SEARCH,
    Candidate,
    CloudOptions,
    ClusterInfo,
    DoctorCheck,
    Instance,
    InstanceState,
    LaunchRequest,
    Offering,
    Placement,
    Provider,
    ProvisionRecord,
)

from cherrypick.errors import CapacityError, InputError, ProvisioningError, Scope

__all__ = ["GcpProvider"]

#: The pause between polls of booting machines.
BOOT_POLL_S = 5.0


class GcpProvider(Provider):
    """Compute Engine machines for trials (see the module docstring).

    ``compute`` (a built ``compute`` v1 client), ``credentials`` and ``project`` replace what
    ``google.auth.default()`` finds; ``regions`` limits ``list_launched`` (default: every
    zone, one aggregated list); ``sleep``, ``clock`` and ``fetch_ip`` (the caller's address,
    when ``ssh_cidr`` is not set) are for tests; ``default_credentials`` stands for
    ``google.auth.default``.
    """

    name = "gcp"
    needs_ssh_key = True
    minimum_billed_s = 60.0

    def __init__(
        self,
        options: CloudOptions | None = None,
        *,
        compute: Any = None,
        credentials: Any = None,
        project: str | None = None,
        regions: Sequence[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        fetch_ip: Callable[[str], str] | None = None,
        default_credentials: Callable[[], tuple[Any, str | None]] | None = None,
    ) -> None:
        self.options = options if options is not None else CloudOptions()
        self.api = ComputeApi(
            compute=compute,
            credentials=credentials,
            project=project or self.options.project,
            default_credentials=default_credentials,
            sleep=sleep,
            clock=clock,
        )
        self.quotas = QuotaBook(self.name, self.api.call, self.options.spot)
        self._regions = frozenset(regions) if regions is not None else None
        self._sleep = sleep
        self._clock = clock
        self._fetch_ip = fetch_ip
        self._firewalls: set[str] = set()
        self._zones: dict[tuple[str, str], tuple[str, ...]] = {}

    @property
    def ssh_user(self) -> str:
        return self.options.ssh_user or DEFAULT_USER

    # -- the interface ------------------------------------------------------------------------

    def placements(self, candidate: Candidate) -> Sequence[Placement]:
        """The catalog's zones when it lists them; else the zones of the offering's region
        where Compute Engine offers its machine (or GPU) type, asked once per type."""
        offering = candidate.offering
        if offering.extra.get("zones"):
            return super().placements(candidate)
        with suppress(ProvisioningError, InputError):
            zones = self._zones_of(offering)
            if zones:
                return tuple(Placement(offering.region, zone) for zone in zones)
        return (Placement(offering.region),)

    def run_instances(self, request: LaunchRequest) -> ProvisionRecord:
        offering = request.candidate.offering
        shape = machine_shape(offering)
        region = request.placement.region
        zone = request.placement.zone or self._first_zone(offering)
        network_tag = self._ensure_firewall(request.tags.get(TAG_SEARCH, request.cluster_name))
        names = [instance_name(request.cluster_name, r) for r in range(request.candidate.nodes)]
        accepted: list[tuple[str, Mapping[str, Any]]] = []
        try:
            for rank, name in enumerate(names):
                body = self._body(request, shape, zone, rank, name, network_tag)
                accepted.append((name, self._insert(zone, body)))
            self._await_inserts(accepted, zone)
        except Exception:
            self._roll_back(zone, accepted)
            raise
        ids = tuple(f"{zone}/{name}" for name in names)
        return ProvisionRecord(self.name, Placement(region, zone), request.cluster_name, ids)

    def wait_instances(self, record: ProvisionRecord, timeout_s: float) -> ClusterInfo:
        deadline = self._clock() + timeout_s
        while True:
            machines = self._booted(record)
            if machines is not None:
                return ClusterInfo(self.name, record.cluster_name, machines)
            if self._clock() >= deadline:
                raise ProvisioningError(
                    self.name,
                    f"instances not running with an address after {timeout_s:.0f} s",
                    region=record.placement.region,
                    zone=record.placement.zone,
                )
            self._sleep(BOOT_POLL_S)

    def query_instances(self, region: str, instance_ids: Sequence[str]) -> dict[str, InstanceState]:
        states = {}
        for instance_id in instance_ids:
            item = self._get(instance_id)
            states[instance_id] = InstanceState.TERMINATED if item is None else instance_state(item)
        return states

    def terminate_instances(self, region: str, instance_ids: Sequence[str]) -> None:
        by_zone: dict[str, list[str]] = {}
        for instance_id in instance_ids:
            zone, _, name = instance_id.rpartition("/")
            if zone:
                by_zone.setdefault(zone, []).append(name)
        for zone, names in by_zone.items():
            self._delete(zone, names)

    def list_launched(self, tags: Mapping[str, str]) -> Sequence[Instance]:
        wanted = labels(tags)
        found = []
        for item in self.api.aggregated("instances", "instances", filter=label_filter(tags)):
            machine = instance_of(item, self.ssh_user)
            carries_all = all(item.get("labels", {}).get(k) == v for k, v in wanted.items())
            if carries_all and (self._regions is None or machine.region in self._regions):
                found.append(machine)
        return found

    def quota_shortfall(self, candidate: Candidate, placement: Placement) -> str | None:
        return self.quotas.shortfall(candidate, placement.region)

    def doctor(self, offerings: Sequence[Offering]) -> Sequence[DoctorCheck]:
        return self.quotas.doctor([o for o in offerings if o.provider == self.name])

    def cleanup_search(self, search_tag: str) -> Sequence[str]:
        name = _cloud.resource_name(search_tag, "ssh")
        self._firewalls.discard(name)
        try:
            operation = self.api.call(lambda c, p: c.firewalls().delete(project=p, firewall=name))
        except ProvisioningError as exc:
            if exc.code == NOT_FOUND:
                return []
            raise
        self.api.finish(operation, None, None)
        return [f"firewall rule {name}"]

    # -- launching ----------------------------------------------------------------------------

    def _body(
        self,
        request: LaunchRequest,
        shape: MachineShape,
        zone: str,
        rank: int,
        name: str,
        network_tag: str,
    ) -> dict[str, Any]:
        key = request.ssh_public_key
        return instance_body(
            name=name,
            zone=zone,
            shape=shape,
            image=source_image(self.options.image),
            machine_labels=labels(request.tags, rank),
            ssh_entry=None if key is None else f"{self.ssh_user}:{key.strip()}",
            startup_script=_cloud.self_destruct_script(request.max_life_s),
            network_tag=network_tag,
            spot=self.options.spot,
            max_life_s=request.max_life_s,
        )

    def _insert(self, zone: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """Ask for one machine; its operation. A 409 means a retried insert had already
        succeeded (the name is this cluster's own), so the machine is there."""
        try:
            return self.api.call(
                lambda c, p: c.instances().insert(project=p, zone=zone, body=body),
                region_of(zone),
                zone,
            )
        except ProvisioningError as exc:
            if exc.code == ALREADY_EXISTS:
                return {"status": "DONE"}
            raise

    def _await_inserts(self, accepted: list[tuple[str, Mapping[str, Any]]], zone: str) -> None:
        """Wait for every insert (each entry then holds its DONE operation); raise the first
        error, classified."""
        region = region_of(zone)
        for index, (name, operation) in enumerate(accepted):
            done = self.api.wait(operation, region, zone)
            accepted[index] = (name, done)
            error = operation_error(done, region, zone)
            if error is not None:
                raise error

    def _roll_back(self, zone: str, accepted: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Delete what a failed launch made, once its inserts have ended (an instance still
        being created cannot be deleted). The launch's own error is what the caller sees."""
        for _, operation in accepted:
            with suppress(ProvisioningError):
                self.api.wait(operation, region_of(zone), zone)
        with suppress(ProvisioningError):
            self._delete(zone, [name for name, _ in accepted])

    def _ensure_firewall(self, search_tag: str) -> str:
        """The search's SSH rule (made once; an existing one gets this caller's network, as
        when a search resumes elsewhere); its name, which is also the machines' network tag."""
        name = _cloud.resource_name(search_tag, "ssh")
        if name in self._firewalls:
            return name
        cidr = _cloud.caller_cidr(self.options.ssh_cidr, self._fetch_ip, "clouds.gcp.ssh_cidr")
        body = firewall_body(name, cidr, search_tag)
        try:
            operation = self.api.call(lambda c, p: c.firewalls().insert(project=p, body=body))
        except ProvisioningError as exc:
            if exc.code != ALREADY_EXISTS:
                raise
            patch = {"sourceRanges": [cidr]}
            operation = self.api.call(
                lambda c, p: c.firewalls().patch(project=p, firewall=name, body=patch)
            )
        self.api.finish(operation, None, None)
        self._firewalls.add(name)
        return name

    def _first_zone(self, offering: Offering) -> str:
        zones = self._zones_of(offering)
        if not zones:
            raise CapacityError(
                self.name,
                f"{offering.instance_type} is offered in no zone of {offering.region}",
                region=offering.region,
                scope=Scope.REGION,
                code="NOT_OFFERED",
            )
        return zones[0]

    def _zones_of(self, offering: Offering) -> tuple[str, ...]:
        """Zones of the offering's region with its machine type (N1: with its GPU type)."""
        key = (offering.region, offering.instance_type)
        if key not in self._zones:
            shape = machine_shape(offering)
            if shape.attaches_gpus:
                resource, wanted = "acceleratorTypes", shape.accelerator
            else:
                resource, wanted = "machineTypes", shape.machine_type
            items = self.api.aggregated(resource, resource, filter=f'name = "{wanted}"')
            zones = {str(item.get("zone", "")).rsplit("/", 1)[-1] for item in items}
            self._zones[key] = tuple(sorted(z for z in zones if region_of(z) == offering.region))
        return self._zones[key]

    # -- machines -----------------------------------------------------------------------------

    def _get(self, instance_id: str) -> Mapping[str, Any] | None:
        """The instance resource, None when there is none (deleted, or not an id of ours)."""
        zone, _, name = instance_id.rpartition("/")
        if not zone:
            return None
        try:
            return self.api.call(
                lambda c, p: c.instances().get(project=p, zone=zone, instance=name),
                region_of(zone),
                zone,
            )
        except ProvisioningError as exc:
            if exc.code == NOT_FOUND:
                return None
            raise

    def _booted(self, record: ProvisionRecord) -> tuple[Instance, ...] | None:
        """The cluster's machines, rank 0 first, once all run with their addresses (None
        before); raises if one has ended (deleted, stopped, preempted)."""
        found = [(i, self._get(i)) for i in record.instance_ids]
        ended = [
            i for i, item in found if item is None or instance_state(item) is InstanceState.STOPPING
        ]
        if ended:
            raise ProvisioningError(
                self.name,
                f"instances ended while booting: {', '.join(ended)}",
                region=record.placement.region,
                zone=record.placement.zone,
            )
        items = [item for _, item in found if item is not None]
        if not all(is_ready(item) for item in items):
            return None
        machines = (instance_of(item, self.ssh_user) for item in items)
        return tuple(sorted(machines, key=lambda m: m.node_rank))

    def _delete(self, zone: str, names: Sequence[str]) -> None:
        """Delete the instances and wait until they are gone; gone already is fine."""
        operations = [op for op in (self._delete_one(zone, n) for n in names) if op is not None]
        for operation in operations:
            done = self.api.wait(operation, region_of(zone), zone)
            error = operation_error(done, region_of(zone), zone)
            if error is not None and error.code != "RESOURCE_NOT_FOUND":
                raise error

    def _delete_one(self, zone: str, name: str) -> Mapping[str, Any] | None:
        """The delete operation of one instance, None when it is gone already."""
        try:
            return self.api.call(
                lambda c, p: c.instances().delete(project=p, zone=zone, instance=name),
                region_of(zone),
                zone,
            )
        except ProvisioningError as exc:
            if exc.code == NOT_FOUND:
                return None
            raise
