"""Workloads: the jobs a search runs on candidate machines (``cherrypick.workloads.base``), e.g. ``cnn``."""

from cherrypick.workloads.base import (
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
