"""What a search needs from any workload: the interface, and the values that cross it.

A workload is the job that runs on every candidate machine. The search engine asks it for the
commands that prepare a fresh VM and start one trial on each node, fetches the file at
``result_path`` from the first node, and turns it into a :class:`TrialResult` with
:meth:`Workload.parse_result`. For dry runs, a workload describes its costs as a
:class:`JobProfile` (pure data that the simulated provider turns into a runtime on any GPU), or
estimates the runtime itself.

Workloads are found by name in :data:`workload_registry`; each factory takes one mapping of
parameters (a search file's ``workload:`` section) and validates it. Nothing here imports torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from cherrypick.registry import Registry
from cherrypick.trials import TrialStatus

if TYPE_CHECKING:
    from cherrypick.providers.base import Candidate

__all__ = [
    "BREAKDOWN_KEYS",
    "JobProfile",
    "LayerCost",
    "TrialResult",
    "Workload",
    "create_workload",
    "workload_registry",
]

#: Where an iteration's time goes: the keys of a result's ``breakdown_ms`` (measured by the CNN
#: workload, predicted by the simulated provider); they sum to the iteration.
BREAKDOWN_KEYS = (
    "data",
    "h2d",
    "forward",
    "backward",
    "optimizer",
    "communication",
    "unattributed",
)

_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: What a workload can say of its trial (not ``running``, ``cancelled`` or ``unavailable``: the
#: search's words).
_REPORTED = frozenset(TrialStatus) - {
    TrialStatus.RUNNING,
    TrialStatus.CANCELLED,
    TrialStatus.UNAVAILABLE,
}


@dataclass(frozen=True)
class TrialResult:
    """What the workload says one trial measured (its result file, parsed): ``runtime_s`` is the
    projected full-job time, None unless ``ok``; ``details`` is the workload's own result. It knows
    nothing of machines or billing, so a workload can be written without the search's types."""

    status: TrialStatus
    runtime_s: float | None
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    message: str = ""

    def __post_init__(self) -> None:
        if self.status not in _REPORTED:
            known = [s.value for s in _REPORTED]
            raise ValueError(f"status must be one of {known}, not {self.status!r}")
        object.__setattr__(self, "status", TrialStatus(self.status))

    @property
    def feasible(self) -> bool:
        return self.status == "ok" and self.runtime_s is not None


@dataclass(frozen=True)
class LayerCost:
    """One named layer's work in one iteration of one process (at ``JobProfile.batch_size``).

    FLOPs count a multiply-add as two, as ``torch.utils.flop_counter`` does (matrix products and
    convolutions only). ``bytes`` is the memory traffic of forward plus backward.
    """

    name: str
    forward_flops: float
    backward_flops: float
    bytes: float
    params: int


@dataclass(frozen=True)
class JobProfile:
    """What a performance model needs to predict a training job's runtime on any machine.

    ``batch_size`` is per GPU (or per process on CPU); the global batch grows with the GPU count.
    ``calibration`` optionally carries measured times (e.g. from ``cherrypick profile``) that a
    model may scale from instead of starting from peak numbers. ``channels_last``: activations
    in NHWC layout rather than PyTorch's default NCHW.
    """

    layers: tuple[LayerCost, ...]
    batch_size: int
    samples_per_epoch: int
    epochs: float
    parameter_count: int
    activation_bytes_per_sample: float
    input_bytes_per_sample: float
    precision: str
    data: str
    calibration: Mapping[str, Any] | None = None
    channels_last: bool = False

    @property
    def forward_flops(self) -> float:
        return sum(layer.forward_flops for layer in self.layers)

    @property
    def backward_flops(self) -> float:
        return sum(layer.backward_flops for layer in self.layers)


class Workload(ABC):
    """A training job that a search runs on candidate machines. Subclass it for your own job."""

    name: str = ""
    #: Where the command writes its result on the first node (fetched after the run).
    result_path: str = ""

    @abstractmethod
    def setup_commands(self) -> list[str]:
        """Shell commands that prepare a fresh VM (install packages, fetch data)."""

    @abstractmethod
    def command(
        self, candidate: Candidate, node_rank: int, master_addr: str, master_port: int
    ) -> str:
        """The shell command that runs the trial on node ``node_rank`` of ``candidate``."""

    @abstractmethod
    def parse_result(self, raw: bytes) -> TrialResult:
        """Turn the fetched result file into an observation; a malformed file is an ``error``."""

    def progress(self, output: str) -> str | None:
        """How far a running trial is (e.g. "iteration 12 of 50"), read from the end of the
        command's output on the first node; None if it does not say."""
        return None

    def simulation_profile(self) -> JobProfile | None:
        """The job's costs for the simulated provider, or None if the workload cannot say."""
        return None

    def estimate_runtime(self, candidate: Candidate) -> float | None:
        """A runtime in seconds for dry runs, for workloads that model themselves; else None."""
        return None


workload_registry: Registry[Workload] = Registry("workload", "cherrypick.workloads")
workload_registry.register_lazy("cnn", "cherrypick.workloads.cnn.workload:CNNWorkload")


def create_workload(name: str, params: Mapping[str, Any] | None = None) -> Workload:
    """Build the workload registered as ``name`` from its parameters (validated by it)."""
    return workload_registry.create(name, dict(params or {}))
