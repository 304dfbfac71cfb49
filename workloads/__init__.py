"""Workloads: the jobs a search runs on candidate machines (``workloads.base``), e.g. ``cnn``."""

from workloads.base import (
    TRIAL_STATUSES,
    JobProfile,
    LayerCost,
    TrialResult,
    Workload,
    create_workload,
    workload_registry,
)

__all__ = [
    "TRIAL_STATUSES",
    "JobProfile",
    "LayerCost",
    "TrialResult",
    "Workload",
    "create_workload",
    "workload_registry",
]
