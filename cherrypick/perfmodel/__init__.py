"""The performance model: a training job's iteration time, memory and runtime on any catalog GPU,
from its layers' FLOPs and bytes. It is a real search's prior and the simulated provider's truth."""

from cherrypick.perfmodel.model import (
    MEMORY_SIGMA,
    PerformanceModel,
    fit_probability,
    job_profile,
    memory_parts,
)
from cherrypick.perfmodel.predict import STARTUP_S, Prediction, predict

__all__ = [
    "MEMORY_SIGMA",
    "STARTUP_S",
    "PerformanceModel",
    "Prediction",
    "fit_probability",
    "job_profile",
    "memory_parts",
    "predict",
]
