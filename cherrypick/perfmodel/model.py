"""The performance model as the search and the simulator both use it: a workload's runtime on a
candidate, from its own estimate or from the roofline prediction of its :class:`JobProfile`, and
the probability that the job fits in the candidate's GPU memory."""

from __future__ import annotations

import math
from collections.abc import Mapping

from cherrypick.catalog.gpus import GpuSpec
from cherrypick.errors import UnknownNameError, WorkloadError
from cherrypick.perfmodel.calibrate import calibrated_parts
from cherrypick.perfmodel.predict import Prediction, memory_breakdown, predict
from cherrypick.perfmodel.trial import SETUP_S, TRIAL_CAP_S, billed_seconds, trial_seconds
from cherrypick.providers.base import Candidate
from cherrypick.workloads.base import JobProfile, Workload

__all__ = [
    "ESTIMATED_MEMORY",
    "MEMORY_SIGMA",
    "PerformanceModel",
    "fit_probability",
    "job_profile",
    "memory_parts",
]

#: The items of :func:`~cherrypick.perfmodel.predict.memory_breakdown` that are estimates, not
#: counts: the caching allocator's slack, the library workspaces and the CUDA context. The others
#: are counted from the model: parameters times bytes (weights, gradients, momentum, autocast's
#: copies), the input batch, and the saved activations, which match what autograd saves within
#: ~1% (``cherrypick.workloads.cnn.memory``).
ESTIMATED_MEMORY = ("workspaces", "allocator_slack", "cuda_context")
#: Lognormal sigma of the estimated items' sum. Each is a guess whose plausible range spans about
#: a factor of 2 either way: the context is 300-400 MB with lazy kernel loading and over 1 GB
#: without (pytorch/pytorch#107667); cuDNN's workspace bends from nothing to the memory left
#: (``Conv_v8.cpp``); the allocator's 10% slack is our assumption until
#: ``python -m cherrypick.perfmodel.gpu_check`` measures reserved against allocated bytes.
#: At sigma 0.5 a factor of 2 is 1.4 sigma: 5 in 6 jobs' overheads within a factor of 2.
MEMORY_SIGMA = 0.5


class PerformanceModel:
    """Noise-free predictions over the GPUs of ``gpus`` (the bundled datasheets by default)."""

    def __init__(self, gpus: Mapping[str, GpuSpec] | None = None) -> None:
        self._gpus = gpus

    @property
    def gpus(self) -> Mapping[str, GpuSpec]:
        if self._gpus is None:  # the catalog imports numpy and YAML: only when needed
            from cherrypick.catalog import load_gpus

            self._gpus = load_gpus()
        return self._gpus

    def predict(self, candidate: Candidate, profile: JobProfile) -> Prediction:
        """The prediction for ``profile`` on ``candidate`` (calibrated if it can be)."""
        gpu = candidate.offering.gpu
        if gpu not in self.gpus:
            raise UnknownNameError("GPU", gpu, self.gpus)
        spec = self.gpus[gpu]
        parts = None
        if profile.calibration is not None:
            parts = calibrated_parts(profile, profile.calibration, spec, self.gpus)
        return predict(candidate, profile, spec, parts)

    def runtime(
        self, candidate: Candidate, workload: Workload, min_fit: float = 0.5
    ) -> float | None:
        """The job's runtime on ``candidate``; None where it fits in memory with a probability
        under ``min_fit`` (by default where the model's best guess of its memory does not fit).
        ``WorkloadError`` if the workload can be neither estimated nor profiled."""
        estimate = workload.estimate_runtime(candidate)
        if estimate is not None:
            return estimate
        profile = _gpu_profile(candidate, workload)
        prediction = self.predict(candidate, profile)
        fits = fit_probability(profile, prediction.memory_limit_bytes)
        return prediction.runtime_s if fits >= min_fit else None

    def trial_seconds(self, candidate: Candidate, workload: Workload) -> float:
        """How long a trial of ``workload`` on ``candidate`` is billed for, as predicted
        (``cherrypick.perfmodel.trial``); ``WorkloadError`` as for :meth:`runtime`."""
        estimate = workload.estimate_runtime(candidate)
        if estimate is not None:
            return billed_seconds(SETUP_S, min(estimate, TRIAL_CAP_S))
        profile = _gpu_profile(candidate, workload)
        return trial_seconds(candidate, profile, self.predict(candidate, profile))

    def fit_probability(self, candidate: Candidate, workload: Workload) -> float:
        """The probability that the job fits in the memory of ``candidate``'s GPUs (1 for a
        workload that estimates its own runtime: it says nothing of memory)."""
        if workload.estimate_runtime(candidate) is not None:
            return 1.0
        profile = _gpu_profile(candidate, workload)
        return fit_probability(profile, candidate.offering.gpu_memory_gib * 2**30)


def memory_parts(profile: JobProfile) -> tuple[float, float]:
    """The peak memory of one process as (counted, estimated) bytes (:data:`ESTIMATED_MEMORY`)."""
    breakdown = memory_breakdown(profile)
    estimated = sum(v for k, v in breakdown.items() if k in ESTIMATED_MEMORY)
    return sum(breakdown.values()) - estimated, estimated


def fit_probability(profile: JobProfile, limit_bytes: float) -> float:
    """P(need <= limit), the counted bytes exact and their estimated ones lognormal around the
    model's figure (sigma :data:`MEMORY_SIGMA`); 0.5 where the figure is exactly the limit."""
    counted, estimated = memory_parts(profile)
    room = limit_bytes - counted
    if room <= 0:
        return 0.0
    if estimated <= 0:
        return 1.0
    z = math.log(room / estimated) / MEMORY_SIGMA
    return 0.5 * math.erfc(-z / math.sqrt(2))


def job_profile(workload: Workload) -> JobProfile:
    """The workload's profile for the model, or ``WorkloadError`` if it has none."""
    profile = workload.simulation_profile()
    if profile is None:
        raise WorkloadError(
            f"workload '{workload.name}' cannot be simulated: it has neither a"
            " simulation_profile() nor an estimate_runtime()"
        )
    return profile


def _gpu_profile(candidate: Candidate, workload: Workload) -> JobProfile:
    if candidate.offering.gpus_per_node == 0:
        raise WorkloadError("the performance model predicts GPU machines only")
    return job_profile(workload)
