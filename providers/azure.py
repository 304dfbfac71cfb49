"""The Azure provider: one resource group per trial, holding everything the trial's machines
need (virtual network and subnet, a network security group letting SSH in from the caller, and
per machine a public address, a network interface and the VM), so that deleting the group is the
whole teardown and nothing attached to a VM can be left behind.

A machine's id is ``{resource group}/{VM name}``; terminating it deletes its group, so a trial's
machines end together. Deletion is only started there: the engine confirms it by querying, and
a VM reads ``stopping`` while its group is being deleted and ``terminated`` once it is gone.

The SDK (azure-mgmt-compute, -network, -resource, azure-identity) is imported lazily and called
through ``providers/_azure_sdk.py`` (retries, classification: ``providers/_azure_errors.py``);
the request bodies are ``providers/_azure_resources.py``'s, the quotas
``providers/_azure_quota.py``'s.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cherrypick.providers._azure_errors import PROVIDER, absent_as_none
from cherrypick.providers._azure_quota import Quotas
from cherrypick.providers._azure_resources import (
    NSG_NAME,
    VNET_NAME,
    group_name,
    image_reference,
    instance_id,
    instance_state,
    network_interface,
    network_security_group,
    parse_instance_id,
    power_state,
    public_ip,
    virtual_machine,
    virtual_network,
    vm_name,
)
from cherrypick.providers._azure_sdk import ARM_SCOPE, Sdk
from cherrypick.providers._cloud import caller_cidr, self_destruct_script
from cherrypick.providers.base import (
    CREATED_BY,
    TAG_CREATED_BY,
    TAG_NODE_RANK,
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

from cherrypick.errors import CherrypickError, ProvisioningError

__all__ = ["AzureProvider"]

DEFAULT_USER = "cherrypick"
#: How often ``wait_instances`` looks again.
WAIT_POLL_S = 5.0


class AzureProvider(Provider):
    """Launches trials on Azure VMs (see the module docstring).

    ``credential`` defaults to ``DefaultAzureCredential()``; the subscription is
    ``subscription_id``, else ``options.subscription_id``, else ``$AZURE_SUBSCRIPTION_ID``.
    ``transport`` and ``polling_interval`` go to the SDK clients (tests give a scripted transport
    and 0). ``regions``, when given, limits ``list_launched`` to those regions (resource groups
    are listed subscription-wide). ``sleep`` and ``clock`` pace retries and waits.
    """

    name = PROVIDER
    needs_ssh_key = True
    minimum_billed_s = 60.0

    def __init__(
        self,
        options: CloudOptions | None = None,
        *,
        credential: Any = None,
        subscription_id: str | None = None,
        transport: Any = None,
        regions: Sequence[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        fetch_ip: Callable[[str], str] | None = None,
        polling_interval: float | None = None,
    ) -> None:
        self.options = options if options is not None else CloudOptions()
        self._sdk = Sdk(
            credential=credential,
            subscription_id=subscription_id or self.options.subscription_id,
            transport=transport,
            polling_interval=polling_interval,
            sleep=sleep,
        )
        self._regions = None if regions is None else frozenset(r.lower() for r in regions)
        self._sleep = sleep
        self._clock = clock
        self._fetch_ip = fetch_ip
        self._quota_book = Quotas(
            lambda: self._sdk.client("compute"), self._sdk.call, spot=self.options.spot
        )

    @property
    def ssh_user(self) -> str:
        return self.options.ssh_user or DEFAULT_USER

    # -- launching ------------------------------------------------------------------------

    def run_instances(self, request: LaunchRequest) -> ProvisionRecord:
        """Create the trial's resource group and its machines; if any part fails, delete the
        group (and wait for it) before raising, so a failed launch leaves nothing behind."""
        if not request.ssh_public_key:
            raise ProvisioningError(self.name, "an Azure VM needs the search's SSH public key")
        image = image_reference(self.options.image)
        cidr = caller_cidr(self.options.ssh_cidr, self._fetch_ip, "clouds.azure.ssh_cidr")
        self._sdk.client("resource")  # without a subscription, fail before making anything
        group = group_name(request.cluster_name)
        try:
            subnet_id = self._create_group(group, request, cidr)
            ids = self._launch_nodes(group, request, subnet_id, image)
        except BaseException:
            self._roll_back(group, request.placement)
            raise
        return ProvisionRecord(self.name, request.placement, request.cluster_name, ids)

    def _create_group(self, group: str, request: LaunchRequest, cidr: str) -> str:
        """The group with its network; the subnet's id."""
        placement, tags = request.placement, dict(request.tags)
        region = placement.region
        groups = self._sdk.client("resource").resource_groups
        body = {"location": region, "tags": tags}
        self._sdk.call(lambda: groups.create_or_update(group, body), region, placement.zone)
        network = self._sdk.client("network")
        nsg = self._sdk.finish(
            lambda: network.network_security_groups.begin_create_or_update(
                group, NSG_NAME, network_security_group(region, tags, cidr)
            ),
            placement,
        )
        vnet = self._sdk.finish(
            lambda: network.virtual_networks.begin_create_or_update(
                group, VNET_NAME, virtual_network(region, tags, nsg.id)
            ),
            placement,
        )
        return str(vnet.subnets[0].id)

    def _launch_nodes(
        self, group: str, request: LaunchRequest, subnet_id: str, image: Mapping[str, str]
    ) -> tuple[str, ...]:
        """Every machine at once (a VM takes minutes to create); every one is awaited before the
        first failure, by rank, is raised, so the group is not deleted under a live create."""
        ranks = range(request.candidate.nodes)
        with ThreadPoolExecutor(max_workers=len(ranks), thread_name_prefix="azure-vm") as pool:
            futures = [
                pool.submit(self._launch_node, group, request, rank, subnet_id, image)
                for rank in ranks
            ]
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
        return tuple(f.result() for f in futures)

    def _launch_node(
        self,
        group: str,
        request: LaunchRequest,
        rank: int,
        subnet_id: str,
        image: Mapping[str, str],
    ) -> str:
        placement = request.placement
        region, zone = placement.region, placement.zone
        name = vm_name(request.cluster_name, rank)
        tags = dict(request.tags) | {TAG_NODE_RANK: str(rank)}
        network, compute = self._sdk.client("network"), self._sdk.client("compute")
        address = self._sdk.finish(
            lambda: network.public_ip_addresses.begin_create_or_update(
                group, f"{name}-ip", public_ip(region, tags, zone)
            ),
            placement,
        )
        nic = self._sdk.finish(
            lambda: network.network_interfaces.begin_create_or_update(
                group, f"{name}-nic", network_interface(region, tags, subnet_id, address.id)
            ),
            placement,
        )
        body = virtual_machine(
            location=region,
            zone=zone,
            size=request.candidate.offering.instance_type,
            name=name,
            tags=tags,
            user=self.ssh_user,
            public_key=str(request.ssh_public_key),
            boot_script=self_destruct_script(request.max_life_s),
            image=image,
            nic_id=nic.id,
            spot=self.options.spot,
        )
        self._sdk.finish(
            lambda: compute.virtual_machines.begin_create_or_update(group, name, body), placement
        )
        return instance_id(group, name)

    def _roll_back(self, group: str, placement: Placement) -> None:
        """Delete a failed launch's group and wait until it is gone (the engine does not track
        a launch that raised). A failure here is not raised over the launch's own: the group
        carries the search's tags, so ``cleanup_search`` and ``cleanup`` find it later."""
        with contextlib.suppress(ProvisioningError):
            self._delete_groups([group], placement.region, wait=True)

    # -- waiting and querying -------------------------------------------------------------

    def wait_instances(self, record: ProvisionRecord, timeout_s: float) -> ClusterInfo:
        deadline = self._clock() + timeout_s
        region = record.placement.region
        while True:
            found = [self._reachable(i, rank, region) for rank, i in enumerate(record.instance_ids)]
            ready = [machine for machine in found if machine is not None]
            if len(ready) == len(found):
                return ClusterInfo(self.name, record.cluster_name, tuple(ready))
            if self._clock() >= deadline:
                waiting = [i for i, m in zip(record.instance_ids, found, strict=True) if m is None]
                raise ProvisioningError(
                    self.name,
                    f"not running with an address after {timeout_s:.0f} s: {', '.join(waiting)}",
                    region=region,
                )
            self._sleep(WAIT_POLL_S)

    def _reachable(self, machine_id: str, rank: int, region: str) -> Instance | None:
        """The machine once it runs with its addresses; None while it is getting there."""
        parsed = parse_instance_id(machine_id)
        vm = None if parsed is None else self._vm(*parsed, region)
        if parsed is None or vm is None or _ended(vm):
            state = "gone" if vm is None else str(vm.provisioning_state).lower()
            raise ProvisioningError(self.name, f"{machine_id} ended ({state})", region=region)
        if power_state(vm) != "running":
            return None
        group, name = parsed
        network = self._sdk.client("network")
        nic = self._sdk.call(lambda: network.network_interfaces.get(group, f"{name}-nic"), region)
        address = self._sdk.call(
            lambda: network.public_ip_addresses.get(group, f"{name}-ip"), region
        )
        if not address.ip_address:
            return None
        return Instance(
            self.name,
            machine_id,
            vm.location,
            node_rank=rank,
            internal_ip=nic.ip_configurations[0].private_ip_address or "",
            external_ip=address.ip_address,
            ssh_user=self.ssh_user,
            tags=dict(vm.tags or {}),
        )

    def query_instances(self, region: str, instance_ids: Sequence[str]) -> dict[str, InstanceState]:
        return {i: self._state(i, region) for i in instance_ids}

    def _state(self, machine_id: str, region: str) -> InstanceState:
        parsed = parse_instance_id(machine_id)
        vm = None if parsed is None else self._vm(*parsed, region)
        return InstanceState.TERMINATED if vm is None else instance_state(vm)

    def _vm(self, group: str, name: str, region: str) -> Any:
        """The VM with its instance view, or None when it (or its group) is gone."""
        machines = self._sdk.client("compute").virtual_machines
        read = absent_as_none(lambda: machines.get(group, name, expand="instanceView"))
        return self._sdk.call(read, region)

    # -- ending ---------------------------------------------------------------------------

    def terminate_instances(self, region: str, instance_ids: Sequence[str]) -> None:
        """Start deleting each machine's resource group (a group already gone is fine)."""
        groups = dict.fromkeys(p[0] for p in map(parse_instance_id, instance_ids) if p)
        self._delete_groups(list(groups), region, wait=False)

    def _delete_groups(self, names: Sequence[str], region: str | None, *, wait: bool) -> list[str]:
        """Delete resource groups, all at once, waiting until they are gone if ``wait``; the
        names of those that were there."""
        if not names:
            return []
        with ThreadPoolExecutor(len(names), thread_name_prefix="azure-rg") as pool:
            deleted = list(pool.map(lambda name: self._delete_group(name, region, wait), names))
        return [name for name, was_there in zip(names, deleted, strict=True) if was_there]

    def _delete_group(self, name: str, region: str | None, wait: bool) -> bool:
        groups = self._sdk.client("resource").resource_groups

        def delete() -> bool:
            poller = groups.begin_delete(name, polling=wait)
            if wait:
                poller.result()
            return True

        return bool(self._sdk.call(absent_as_none(delete), region))

    def list_launched(self, tags: Mapping[str, str]) -> Sequence[Instance]:
        """Every VM carrying all of ``tags`` in the groups this tool created."""
        found: list[Instance] = []
        for group in self._groups(TAG_CREATED_BY, CREATED_BY):
            if self._regions is None or str(group.location).lower() in self._regions:
                found += [m for m in self._machines(group.name) if _carries(m.tags, tags)]
        return sorted(found, key=lambda m: (m.instance_id.partition("/")[0], m.node_rank))

    def _groups(self, tag: str, value: str) -> list[Any]:
        groups = self._sdk.client("resource").resource_groups
        wanted = f"tagName eq '{tag}' and tagValue eq '{value}'"
        return self._sdk.call(lambda: list(groups.list(filter=wanted)), None)

    def _machines(self, group: str) -> list[Instance]:
        machines = self._sdk.client("compute").virtual_machines
        listed = self._sdk.call(absent_as_none(lambda: list(machines.list(group))), None) or []
        return [
            Instance(
                self.name,
                instance_id(group, vm.name),
                vm.location,
                node_rank=int((vm.tags or {}).get(TAG_NODE_RANK, 0)),
                ssh_user=self.ssh_user,
                tags=dict(vm.tags or {}),
            )
            for vm in listed
        ]

    def cleanup_search(self, search_tag: str) -> Sequence[str]:
        """Delete every resource group of the search still there (trials' groups are deleted
        as their machines end; this catches one whose deletion failed or never started), and
        wait until they are gone."""
        names = [str(g.name) for g in self._groups(TAG_SEARCH, search_tag)]
        return [f"resource group {name}" for name in self._delete_groups(names, None, wait=True)]

    # -- quota and doctor -----------------------------------------------------------------

    def quota_shortfall(self, candidate: Candidate, placement: Placement) -> str | None:
        return self._quota_book.shortfall(candidate, placement)

    def doctor(self, offerings: Sequence[Offering]) -> Sequence[DoctorCheck]:
        """The credential, the subscription, then each region's quotas behind ``offerings``
        (only once the first two are fine: without them every quota check fails alike)."""
        checks = [self._check_credential()]
        if checks[-1].ok:
            checks.append(self._check_subscription())
        if checks[-1].ok:
            mine = [o for o in offerings if o.provider == self.name]
            for region in sorted({o.region for o in mine}):
                checks += self._quota_book.checks(region, [o for o in mine if o.region == region])
        return checks

    def _check_credential(self) -> DoctorCheck:
        from azure.core.exceptions import AzureError

        try:
            self._sdk.credential().get_token(ARM_SCOPE)
        except (AzureError, ImportError) as exc:
            return DoctorCheck(
                self.name,
                "credentials",
                False,
                " ".join(str(exc).split())[:300],
                "run 'az login' (or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
                " for a service principal)",
            )
        return DoctorCheck(self.name, "credentials", True, "got a Resource Manager token")

    def _check_subscription(self) -> DoctorCheck:
        try:
            subscription = self._sdk.subscription
            groups = self._sdk.client("resource").resource_groups
            self._sdk.call(lambda: next(iter(groups.list(top=1)), None), None)
        except CherrypickError as exc:
            fix = (
                "set clouds.azure.subscription_id or AZURE_SUBSCRIPTION_ID to a subscription"
                " listed by 'az account list -o table' where you hold the Contributor role"
            )
            return DoctorCheck(self.name, "subscription", False, str(exc), fix)
        return DoctorCheck(self.name, "subscription", True, f"{subscription} answers")


def _ended(vm: Any) -> bool:
    return (vm.provisioning_state or "").lower() in {"failed", "deleting"}


def _carries(found: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(found.get(k) == v for k, v in wanted.items())
