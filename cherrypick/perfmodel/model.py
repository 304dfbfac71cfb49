"""The performance model as the search and the simulator both use it: a workload's runtime on a
candidate, from its own estimate or from the roofline prediction of its :class:`JobProfile`."""

from __future__ import annotations

from collections.abc import Mapping

from cherrypick.catalog.gpus import GpuSpec
from cherrypick.errors import UnknownNameError, WorkloadError
from cherrypick.perfmodel.calibrate import calibrated_parts
from cherrypick.perfmodel.predict import Prediction, predict
from cherrypick.providers.base import Candidate
from cherrypick.workloads.base import JobProfile, Workload

__all__ = ["PerformanceModel", "job_profile"]


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

    def runtime(self, candidate: Candidate, workload: Workload) -> float | None:
        """The job's runtime on ``candidate``; None where the model predicts the run fails
        (``WorkloadError`` if the workload can be neither estimated nor profiled)."""
        estimate = workload.estimate_runtime(candidate)
        if estimate is not None:
            return estimate
        if candidate.offering.gpus_per_node == 0:
            raise WorkloadError("the performance model predicts GPU machines only")
        prediction = self.predict(candidate, job_profile(workload))
        return None if prediction.oom else prediction.runtime_s


def job_profile(workload: Workload) -> JobProfile:
    """The workload's profile for the model, or ``WorkloadError`` if it has none."""
    profile = workload.simulation_profile()
    if profile is None:
        raise WorkloadError(
            f"workload '{workload.name}' cannot be simulated: it has neither a"
            " simulation_profile() nor an estimate_runtime()"
        )
    return profile
