"""The inventory provider: hosts listed in an inventory file (``providers/inventory.py``),
reserved for one trial at a time instead of launched.

"Launching" reserves free hosts of the candidate's offering in the trial store, atomically (all
of them or none), so two trials never share a machine and a measurement is never taken on a busy
one. Terminating kills every process the trial started on each host and removes its working
folder, and only then releases the host.

Each host's trial folder is ``{workdir}/cherrypick-{host name}``: a host is held by one trial at a
time, so a per-host folder is unique among live trials, and it is known from the host alone. That
makes cleanup crash-proof: after a controller crash, the store's reservations (host -> trial) are
all there is, and they suffice to find and clean the folder. (A folder named after the cluster
would need the cluster name, which the reservation does not keep.) A released host has no trial
folder; a host that could not be cleaned stays reserved.

A host that cannot be reached when its trial ends stays reserved, and ``terminate_instances``
raises :class:`~cherrypick.errors.ProvisioningError` naming it: releasing it would let the next
trial measure on a machine where the last one may still run (run ``cherrypick cleanup`` once it
answers again). Unless its trial never reached it (the store records the first contact): then
nothing of ours runs there, and it is released. Owned machines bill nothing extra per start:
``minimum_billed_s`` is 0.

Reservations are only as shared as the store that holds them: trials of one search never share a
host, but two searches over one inventory, each with its own store, do not see each other's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

from cherrypick.providers.base import (
    CREATED_BY,
    TAG_CREATED_BY,
    TAG_NODE_RANK,
    TAG_OWNER,
    TAG_TRIAL,
    Candidate,
    ClusterInfo,
    Instance,
    InstanceState,
    LaunchRequest,
    Offering,
    Provider,
    ProvisionRecord,
)
from cherrypick.providers.inventory import Host, Inventory

from cherrypick.errors import CapacityError, CherrypickError, InputError, ProvisioningError
from cherrypick.runners import kill_all_in, runner_for

__all__ = ["CONNECT_LIMIT_S", "InventoryProvider", "Reservations", "trial_dir"]

#: How long terminating waits for a host to accept a connection before calling it unreachable.
CONNECT_LIMIT_S = 30.0
_ID_PREFIX = "ssh:"
#: The same for a host its trial never reached: it is released whether or not it answers, so
#: waiting the whole limit for it (after its trial already waited its own) buys nothing.
UNREACHED_LIMIT_S = 1.0
#: How soon to ask again for hosts another trial of the search holds.
HOLD_RETRY_S = 2.0


class Reservations(Protocol):
    """What the provider needs of the trial store (``cherrypick.store.TrialStore`` fits): the
    durable record of which trial holds which host."""

    def reserve_hosts(self, provider: str, hosts: Sequence[str], trial_id: int) -> bool: ...
    def release_hosts(self, hosts: Sequence[str]) -> None: ...
    def reservations(self, provider: str | None = None) -> dict[str, int]: ...
    def was_reached(self, instance_id: str) -> bool: ...


def trial_dir(host: Host) -> str:
    """The folder a trial on ``host`` works in (see the module docstring for why per host)."""
    return f"{host.workdir.rstrip('/')}/cherrypick-{host.name}"


class InventoryProvider(Provider):
    """Reserves inventory hosts in ``store`` for trials (see the module docstring).

    ``owner`` (``host:pid`` of the controller) goes into the tags of the instances it reports
    when the launch request carries none.
    """

    name = "ssh"
    minimum_billed_s = 0.0

    def __init__(
        self,
        inventory: Inventory,
        store: Reservations,
        owner: str = "",
        *,
        connect_limit_s: float = CONNECT_LIMIT_S,
    ) -> None:
        self.inventory = inventory
        self.store = store
        self.owner = owner
        self.connect_limit_s = connect_limit_s
        self._offerings = {o.key: o for o in inventory.offerings()}
        self._tags: dict[str, Mapping[str, str]] = {}

    def run_instances(self, request: LaunchRequest) -> ProvisionRecord:
        """Reserve ``nodes`` free hosts of the offering for the request's trial, or raise
        ``CapacityError`` (another trial may free them: worth another try later)."""
        offering = self._offering(request.candidate)
        trial_id = _trial_id(request.tags)
        hosts = self._reserve(offering, request.candidate.nodes, trial_id)
        ids = tuple(_instance_id(h) for h in hosts)
        for rank, instance_id in enumerate(ids):
            self._tags[instance_id] = self._base_tags() | dict(request.tags) | _rank_tag(rank)
        return ProvisionRecord(self.name, request.placement, request.cluster_name, ids)

    def wait_instances(self, record: ProvisionRecord, timeout_s: float) -> ClusterInfo:
        """The reserved hosts at once: they are always on (reachability is the runner's)."""
        reserved = self.store.reservations(self.name)
        instances = []
        for rank, instance_id in enumerate(record.instance_ids):
            host = self._host(instance_id)
            if host.name not in reserved:
                message = f"host {host.name} is no longer reserved for this trial"
                raise ProvisioningError(self.name, message, region=host.region)
            tags = self._launch_tags(host, reserved[host.name], rank)
            instances.append(self._instance(host, rank, tags))
        return ClusterInfo(self.name, record.cluster_name, tuple(instances))

    def query_instances(self, region: str, instance_ids: Sequence[str]) -> dict[str, InstanceState]:
        """``running`` while reserved (the store is the durable record), else ``terminated``."""
        reserved = self.store.reservations(self.name)
        return {
            i: InstanceState.RUNNING if _host_name(i) in reserved else InstanceState.TERMINATED
            for i in instance_ids
        }

    def terminate_instances(self, region: str, instance_ids: Sequence[str]) -> None:
        """Kill what the trial started on each host, remove its folder, then release it; raise
        ``ProvisioningError`` naming the hosts that could not be cleaned (they stay reserved)."""
        reserved = self.store.reservations(self.name)
        failures = []
        for instance_id in instance_ids:
            name = _host_name(instance_id)
            if name not in reserved:
                continue  # released already: terminating twice is not an error
            reached = self.store.was_reached(instance_id)
            problem = self._clean(name, self.connect_limit_s if reached else UNREACHED_LIMIT_S)
            if problem is not None and not reached:
                problem = None  # never reached by its trial: nothing of ours can run there
            if problem is None:
                self.store.release_hosts([name])
                self._tags.pop(instance_id, None)
            else:
                failures.append(f"{name} ({problem})")
        if failures:
            message = (
                f"could not clean host(s) {'; '.join(failures)}; they stay reserved so no trial"
                " measures on a busy machine: run `cherrypick cleanup` once they answer"
            )
            raise ProvisioningError(self.name, message)

    def list_launched(self, tags: Mapping[str, str]) -> Sequence[Instance]:
        """The hosts reserved in the store, of the trial in ``tags`` if it names one.

        Only the trial tag is checked: a reservation keeps no other, and the store is the
        search's own, so every reservation in it is this search's.
        """
        wanted = tags.get(TAG_TRIAL)
        return [
            self._instance(host, rank, self._launch_tags(host, trial_id, rank))
            for host, trial_id, rank in self._held()
            if wanted is None or str(trial_id) == wanted
        ]

    # -- helpers ----------------------------------------------------------------------------------

    def _offering(self, candidate: Candidate) -> Offering:
        offering = self._offerings.get(candidate.offering.key)
        if offering is None:
            raise InputError(
                f"{candidate.offering.key} is not an offering of {self.inventory.source}"
                f"; it has: {', '.join(sorted(self._offerings))}"
            )
        return offering

    def _reserve(self, offering: Offering, nodes: int, trial_id: int) -> list[Host]:
        names: tuple[str, ...] = offering.extra["hosts"]
        # The store reserves all or none atomically; a host another trial takes between our
        # read and our write makes the reservation fail, so read again (bounded).
        for _ in range(len(names) + 1):
            reserved = self.store.reservations()
            free = [n for n in names if n not in reserved]
            if len(free) < nodes:
                break
            if self.store.reserve_hosts(self.name, free[:nodes], trial_id):
                return [self._host(_ID_PREFIX + n) for n in free[:nodes]]
        # Hosts held by this store's own trials free up when they end: worth waiting for.
        retry = HOLD_RETRY_S if len(names) >= nodes else None
        raise CapacityError(
            self.name, _busy(offering, nodes, len(free)), region=offering.region, retry_s=retry
        )

    def _held(self) -> list[tuple[Host, int, int]]:
        """Every reserved host of the inventory with its trial and its rank in that trial: hosts
        are reserved in offering order, so a trial's rank is its order there."""
        reserved = self.store.reservations(self.name)
        held = []
        for offering in self._offerings.values():
            ranks: dict[int, int] = {}
            for name in offering.extra["hosts"]:
                if name in reserved:
                    trial_id = reserved[name]
                    ranks[trial_id] = ranks.get(trial_id, -1) + 1
                    held.append((self._host(_ID_PREFIX + name), trial_id, ranks[trial_id]))
        return held

    def _launch_tags(self, host: Host, trial_id: int, rank: int) -> Mapping[str, str]:
        """The tags the launch gave the host or, after a crash, those its reservation tells."""
        remembered = self._tags.get(_instance_id(host))
        if remembered is not None:
            return remembered
        return self._base_tags() | {TAG_TRIAL: str(trial_id)} | _rank_tag(rank)

    def _host(self, instance_id: str) -> Host:
        host = self.inventory.host(_host_name(instance_id))
        if host is None:
            message = f"{instance_id} is not a host of {self.inventory.source}"
            raise ProvisioningError(self.name, message)
        return host

    def _base_tags(self) -> dict[str, str]:
        return {TAG_CREATED_BY: CREATED_BY, **({TAG_OWNER: self.owner} if self.owner else {})}

    def _instance(self, host: Host, rank: int, tags: Mapping[str, str]) -> Instance:
        address = "127.0.0.1" if host.local else host.address
        extra = {
            "transport": "local" if host.local else "ssh",
            "workdir": trial_dir(host),
            "python": host.python,
            "host": host.name,
        }
        return Instance(
            provider=self.name,
            instance_id=_instance_id(host),
            region=host.region,
            node_rank=rank,
            internal_ip=address,
            external_ip=address,
            ssh_port=host.port,
            ssh_user=host.user,
            tags=MappingProxyType(dict(tags)),
            host_key=host.host_key,
            key_file=host.key_file,
            extra=MappingProxyType(extra),
        )

    def _clean(self, name: str, connect_limit_s: float) -> str | None:
        """Kill the trial's processes on host ``name`` and remove its folder; what went wrong,
        or None."""
        host = self.inventory.host(name)
        if host is None:
            return f"not in {self.inventory.source} any more; clean it by hand"
        instance = self._instance(host, 0, {})
        try:
            with runner_for(instance, connect_limit_s=connect_limit_s) as runner:
                kill_all_in(runner, trial_dir(host))
        except CherrypickError as exc:
            return str(exc)
        return None


def _busy(offering: Offering, nodes: int, free: int) -> str:
    total = len(offering.extra["hosts"])
    if free == 0:
        return f"all {total} hosts of offering {offering.key} are reserved"
    return f"{nodes} hosts of offering {offering.key} needed, {free} of {total} free"


def _trial_id(tags: Mapping[str, str]) -> int:
    try:
        return int(tags[TAG_TRIAL])
    except (KeyError, ValueError):
        message = f"a launch request needs a numeric '{TAG_TRIAL}' tag to reserve hosts"
        raise ProvisioningError("ssh", message) from None


def _rank_tag(rank: int) -> dict[str, str]:
    return {TAG_NODE_RANK: str(rank)}


def _instance_id(host: Host) -> str:
    return _ID_PREFIX + host.name


def _host_name(instance_id: str) -> str:
    """The host of an instance id; "" (never reserved) for an id this provider did not make."""
    return instance_id.removeprefix(_ID_PREFIX) if instance_id.startswith(_ID_PREFIX) else ""
