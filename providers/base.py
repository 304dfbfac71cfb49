"""The provider interface and the typed values that cross it.

A provider launches the machines of one candidate configuration, waits until they are reachable,
terminates them, and lists what this tool launched (so nothing is left running). Cloud SDKs are
imported lazily inside each provider's module; importing this module costs nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cherrypick.registry import Registry

if TYPE_CHECKING:
    from cherrypick.workloads.base import TrialResult, Workload

__all__ = ["Candidate", "Instance", "Offering", "Provider", "TrialRun", "provider_registry"]


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


@dataclass(frozen=True)
class Instance:
    """One launched machine. ``extra`` carries provider-specific details."""

    provider: str
    instance_id: str
    region: str
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class TrialRun:
    """A trial as a provider executed it: the workload's result and the wall seconds each phase
    took. The workload cannot know them (boot happens before it starts); billing needs them."""

    result: TrialResult
    boot_s: float
    setup_s: float
    run_s: float

    @property
    def billed_s(self) -> float:
        """Clouds bill per second with a 60 s minimum."""
        return max(60.0, self.boot_s + self.setup_s + self.run_s)


class Provider(ABC):
    """Launches and terminates the machines of a candidate.

    ``tag`` marks every machine a search launches, so ``list_launched(tag)`` finds them all even
    after a crash, and terminating by tag leaves nothing running.
    """

    name: str = ""

    @abstractmethod
    def launch(self, candidate: Candidate, tag: str) -> Sequence[Instance]:
        """Start ``candidate.nodes`` machines of the candidate's offering."""

    @abstractmethod
    def wait_until_reachable(self, instances: Sequence[Instance], timeout_s: float) -> None:
        """Return when every instance accepts connections; raise ProvisioningError on timeout."""

    @abstractmethod
    def terminate(self, instances: Sequence[Instance]) -> None:
        """Terminate the instances; terminating an already-gone instance is not an error."""

    @abstractmethod
    def list_launched(self, tag: str) -> Sequence[Instance]:
        """Every machine carrying ``tag`` that is not terminated."""

    def execute(
        self,
        candidate: Candidate,
        instances: Sequence[Instance],
        workload: Workload,
        timeout_s: float,
    ) -> TrialRun:
        """Run the workload on the launched instances and collect its result.

        Cloud providers run the workload's commands over SSH; simulated providers answer from a
        model. The default is the SSH path, which no provider in this version implements yet.
        """
        raise NotImplementedError(f"provider '{self.name}' cannot execute workloads")


provider_registry: Registry[Provider] = Registry("provider", "cherrypick.providers")
provider_registry.register_lazy("simulated", "cherrypick.providers.simulated:SimulatedProvider")
