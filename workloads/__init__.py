"""Workloads: the jobs a search runs on candidate machines (``cherrypick.workloads.base``),
e.g. ``cnn``."""

from cherrypick.workloads.base import (
    JobProfile,
    LayerCost,
    TrialResult,
    Workload,
    create_workload,
    workload_registry,
)

__all__ = [
    "JobProfile",
    "LayerCost",
    "TrialResult",
    "Workload",
    "create_workload",
    "workload_registry",
]
