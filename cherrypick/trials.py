"""The words every room uses for a trial: how it ended (:class:`TrialStatus`) and what it ran on
(:class:`CandidateRecord`, the candidate as the store, the reports and the results keep it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cherrypick.providers.base import Candidate

__all__ = ["CandidateRecord", "TrialStatus"]


class TrialStatus(str, Enum):
    """Where a trial stands. A workload reports ``ok``, ``oom``, ``error`` or ``timeout``;
    ``unavailable`` (no placement had machines of that type: capacity, not a measurement) is the
    search's; ``running`` is the store's word for a trial in flight (or stopped with its search:
    ``--resume`` runs it again); ``cancelled`` is how stores of older versions say the latter."""

    RUNNING = "running"
    OK = "ok"
    OOM = "oom"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    UNAVAILABLE = "unavailable"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CandidateRecord:
    """A candidate flattened to what outlives the catalog: enough to name it, price it and
    launch it again. Stored as JSON by :meth:`to_json` and read back by :meth:`from_json` only."""

    provider: str
    region: str
    instance_type: str
    gpu: str
    gpus_per_node: int
    nodes: int
    price_per_hour: float

    @classmethod
    def of(cls, candidate: Candidate) -> CandidateRecord:
        o = candidate.offering
        return cls(
            o.provider,
            o.region,
            o.instance_type,
            o.gpu,
            o.gpus_per_node,
            candidate.nodes,
            candidate.price_per_hour,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CandidateRecord:
        """The record of :meth:`to_json`; ``KeyError``/``ValueError`` if it is not one."""
        return cls(
            provider=str(data["provider"]),
            region=str(data["region"]),
            instance_type=str(data["instance_type"]),
            gpu=str(data["gpu"]),
            gpus_per_node=int(data["gpus_per_node"]),
            nodes=int(data["nodes"]),
            price_per_hour=float(data["price_per_hour"]),
        )

    def describe(self) -> str:
        """``aws us-east-1 p3.8xlarge (4x V100) x 2``."""
        gpus = f"{self.gpus_per_node}x {self.gpu}" if self.gpus_per_node else "no GPU"
        return f"{self.provider} {self.region} {self.instance_type} ({gpus}) x {self.nodes}"
