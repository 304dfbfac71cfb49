"""The provider interface and the typed values that cross it.

A provider provisions: it launches the machines of one trial in one placement, says what state
they are in, waits until they run, terminates them, and lists what this tool launched (so nothing
is left running). It never runs a command on them: runners (``cherrypick.runners``) do. Cloud SDKs
are imported lazily inside each provider's module; importing this module costs nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cherrypick.registry import Registry

if TYPE_CHECKING:
    from cherrypick.workloads.base import TrialResult, Workload

__all__ = [
    "CREATED_BY",
    "AnswersTrials",
    "TAG_CREATED_BY",
    "TAG_NODE_RANK",
    "TAG_OWNER",
    "TAG_SEARCH",
    "TAG_TRIAL",
    "Candidate",
    "CloudOptions",
    "ClusterInfo",
    "DoctorCheck",
    "Instance",
    "InstanceState",
    "LaunchRequest",
    "Offering",
    "Placement",
    "ProvisionRecord",
    "Provider",
    "TrialRun",
    "machine_tags",
    "provider_registry",
]


@dataclass(frozen=True)
class Offering:
    """One VM type in one region, as a catalog lists it. Prices are on-demand $/h for one VM."""

    provider: str
    region: str
    instance_type: str
    vcpus: int
    memory_gib: float
    gpu: str
    gpus_per_node: int
    gpu_memory_gib: float
    interconnect: str
    price_per_hour: float
    spot_price_per_hour: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.region}/{self.instance_type}"


@dataclass(frozen=True)
class Candidate:
    """An offering times a node count: what one trial runs on."""

    offering: Offering
    nodes: int = 1

    @property
    def price_per_hour(self) -> float:
        return self.offering.price_per_hour * self.nodes

    @property
    def total_gpus(self) -> int:
        return self.offering.gpus_per_node * self.nodes

    @property
    def key(self) -> str:
        return f"{self.offering.key}x{self.nodes}"


class InstanceState(StrEnum):
    """What a provider says of one machine when queried."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    TERMINATED = "terminated"


#: The tag keys on every machine this tool launches or reserves; ``CREATED_BY`` marks them all.
TAG_CREATED_BY = "cherrypick-created-by"
TAG_SEARCH = "cherrypick-search"
TAG_TRIAL = "cherrypick-trial"
TAG_NODE_RANK = "cherrypick-node-rank"
TAG_OWNER = "cherrypick-owner"
CREATED_BY = "cherrypick"


def machine_tags(search: str, trial_id: int, owner: str) -> dict[str, str]:
    """The tags of one trial's machines (the provider adds each machine's node rank)."""
    return {
        TAG_CREATED_BY: CREATED_BY,
        TAG_SEARCH: search,
        TAG_TRIAL: str(trial_id),
        TAG_OWNER: owner,
    }


@dataclass(frozen=True)
class Placement:
    """Where a cluster is launched: a region, and a zone where the provider has zones."""

    region: str
    zone: str | None = None

    def describe(self) -> str:
        return self.region if self.zone is None else f"{self.region}/{self.zone}"


@dataclass(frozen=True)
class LaunchRequest:
    """One trial's cluster: ``candidate.nodes`` machines of its offering in one placement.

    ``ssh_public_key`` (OpenSSH format) is the search's ephemeral key, for providers that put a
    key on a fresh machine; ``max_life_s`` is the backstop against a dead controller: a machine
    ends itself (or its job) that long after launch.
    """

    candidate: Candidate
    placement: Placement
    cluster_name: str
    tags: Mapping[str, str]
    max_life_s: float
    ssh_public_key: str | None = None


@dataclass(frozen=True)
class Instance:
    """One machine as a provider reports it, and how to reach it.

    ``host_key`` is the machine's known SSH host key (``ssh-ed25519 AAAA...``) when the provider
    knows it (inventory hosts); ``key_file`` the private key to log in with when it is not the
    search's own. ``extra`` carries provider-specific details.
    """

    provider: str
    instance_id: str
    region: str
    node_rank: int = 0
    internal_ip: str = ""
    external_ip: str | None = None
    ssh_port: int = 22
    ssh_user: str = ""
    tags: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    host_key: str | None = None
    key_file: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def address(self) -> str:
        """The address the controller connects to."""
        return self.external_ip or self.internal_ip


@dataclass(frozen=True)
class CloudOptions:
    """A cloud provider's settings from the search file's ``clouds.<name>`` section.

    ``image``: the machine image to boot (default: the provider's GPU deep-learning image);
    ``ssh_user``: the login of that image; ``ssh_cidr``: who may reach port 22 (default: the
    caller's own address /32); ``spot``: launch spot / preemptible machines, priced at the
    catalog's spot price; ``project`` (GCP) and ``subscription_id`` (Azure): the account, when
    the SDK's standard credential chain does not say it.
    """

    image: str | None = None
    ssh_user: str | None = None
    ssh_cidr: str | None = None
    spot: bool = False
    project: str | None = None
    subscription_id: str | None = None


@dataclass(frozen=True)
class DoctorCheck:
    """One finding of ``cherrypick doctor``: what was checked, whether it is fine, what was seen,
    and (when not fine) how to fix it."""

    provider: str
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class ProvisionRecord:
    """What ``run_instances`` launched: enough to query, wait for and terminate the cluster."""

    provider: str
    placement: Placement
    cluster_name: str
    instance_ids: tuple[str, ...]


@dataclass(frozen=True)
class ClusterInfo:
    """A launched cluster's machines, rank 0 first: rank 0's internal address is the rendezvous."""

    provider: str
    cluster_name: str
    instances: tuple[Instance, ...]

    @property
    def head(self) -> Instance:
        return self.instances[0]


#: Clouds bill per second with this minimum per machine.
MIN_BILLED_S = 60.0


@dataclass(frozen=True)
class TrialRun:
    """A trial as the simulated provider answers it: the workload's result and the (simulated)
    wall seconds each phase took, which billing needs."""

    result: TrialResult
    boot_s: float
    setup_s: float
    run_s: float

    @property
    def billed_s(self) -> float:
        """Clouds bill per second with a minimum (``MIN_BILLED_S``)."""
        return max(MIN_BILLED_S, self.boot_s + self.setup_s + self.run_s)


@runtime_checkable
class AnswersTrials(Protocol):
    """A provider whose trials are answered by a model, not run (the simulated provider): the
    search asks it for the trial's result instead of running the workload's commands."""

    def execute(
        self,
        candidate: Candidate,
        instances: Sequence[Instance],
        workload: Workload,
        timeout_s: float,
    ) -> TrialRun: ...


class Provider(ABC):
    """Provisions the machines of one trial; it never runs a command on them (a runner does).

    Shaped like SkyPilot's provision API: ``run_instances`` launches a cluster in one placement
    (raising :class:`~cherrypick.errors.CapacityError` when the placement has no machines of that
    type), ``wait_instances`` returns once every machine is running with its addresses,
    ``query_instances`` says what each machine is now, ``terminate_instances`` ends them, and
    ``list_launched`` finds every machine carrying a set of tags, so nothing this tool launched
    is lost after a crash. Billing is the engine's: per second from launch to confirmed
    termination, at least ``minimum_billed_s``.
    """

    name: str = ""
    #: The provider's per-machine billing minimum, in seconds.
    minimum_billed_s: float = MIN_BILLED_S

    def placements(self, candidate: Candidate) -> Sequence[Placement]:
        """Where ``candidate`` may be launched, in the order to try: each zone the catalog lists
        for the offering (``extra["zones"]``, cheapest first), else its region."""
        offering = candidate.offering
        zones = offering.extra.get("zones") or ()
        if not zones:
            return (Placement(offering.region),)
        return tuple(Placement(offering.region, zone) for zone in zones)

    def quota_shortfall(self, candidate: Candidate, placement: Placement) -> str | None:
        """Why the account's quota cannot hold ``candidate`` in ``placement`` (a search skips
        such placements without trying them), or None when it can or the provider cannot tell.
        Providers cache what they ask, so a search asks each quota once."""
        return None

    def doctor(self, offerings: Sequence[Offering]) -> Sequence[DoctorCheck]:
        """Check credentials and the quotas behind ``offerings`` (``cherrypick doctor``)."""
        return ()

    def cleanup_search(self, search_tag: str) -> Sequence[str]:
        """Delete what the search made besides machines (key pairs, security groups, firewall
        rules), once its machines are gone; what was deleted, in words. Idempotent."""
        return ()

    @abstractmethod
    def run_instances(self, request: LaunchRequest) -> ProvisionRecord:
        """Launch ``request.candidate.nodes`` machines, each tagged with ``request.tags`` and its
        node rank."""

    @abstractmethod
    def wait_instances(self, record: ProvisionRecord, timeout_s: float) -> ClusterInfo:
        """Return the cluster once every machine runs; raise ProvisioningError on timeout."""

    @abstractmethod
    def query_instances(self, region: str, instance_ids: Sequence[str]) -> dict[str, InstanceState]:
        """Each machine's state now; a machine the provider does not know is ``terminated``."""

    @abstractmethod
    def terminate_instances(self, region: str, instance_ids: Sequence[str]) -> None:
        """End the machines; ending one that is already gone is not an error."""

    @abstractmethod
    def list_launched(self, tags: Mapping[str, str]) -> Sequence[Instance]:
        """Every machine not terminated that carries all of ``tags``."""


provider_registry: Registry[Provider] = Registry("provider", "cherrypick.providers")
provider_registry.register_lazy("simulated", "cherrypick.providers.simulated:SimulatedProvider")
provider_registry.register_lazy("ssh", "cherrypick.providers.ssh:InventoryProvider")
provider_registry.register_lazy("aws", "cherrypick.providers.aws:AwsProvider")
provider_registry.register_lazy("gcp", "cherrypick.providers.gcp:GcpProvider")
provider_registry.register_lazy("azure", "cherrypick.providers.azure:AzureProvider")
