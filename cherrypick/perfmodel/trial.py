"""How long a trial takes and so what it costs, before it runs: boot, set-up, the short run.

The simulated provider bills its trials by these phases, and the search expects them of a
candidate before choosing it (``trial_seconds``): a trial of a dear cluster costs as much as a
fraction of the job, one of a single cheap machine a few cents.
"""

from __future__ import annotations

from cherrypick.perfmodel.predict import STARTUP_S, Prediction
from cherrypick.providers.base import MIN_BILLED_S, Candidate
from cherrypick.workloads.base import JobProfile

__all__ = [
    "BOOT_S",
    "SETUP_S",
    "TRIAL_CAP_S",
    "TRIAL_ITERATIONS",
    "billed_seconds",
    "run_seconds",
    "setup_seconds",
    "trial_seconds",
]

#: From the launch request to a machine that answers SSH: the simulator draws it uniformly from
#: this range (our assumption for GPU VMs with a deep-learning image).
BOOT_S = (45.0, 150.0)
#: Installing packages on a fresh VM (pip, CUDA wheels) before the first trial command.
SETUP_S = 120.0
#: A folder dataset is downloaded at ImageNet's mean JPEG size (~110 KB) over the VM's network.
_FOLDER_BYTES_PER_SAMPLE = 110e3
#: A trial: warm-up plus steady iterations, as the CNN workload's defaults (5 + 45) and more.
TRIAL_ITERATIONS = 105
#: A trial never runs longer than this, whatever the iteration time.
TRIAL_CAP_S = 1800.0


def setup_seconds(candidate: Candidate, profile: JobProfile) -> float:
    """Set-up: packages, and a folder dataset's download at the VM's network (at most 10 Gb/s)."""
    if profile.data != "folder":
        return SETUP_S
    gbps = candidate.offering.extra.get("network_gbps")
    rate = min(float(gbps), 10.0) if isinstance(gbps, int | float) and gbps > 0 else 10.0
    return SETUP_S + profile.samples_per_epoch * _FOLDER_BYTES_PER_SAMPLE * 8 / (rate * 1e9)


def run_seconds(iteration_s: float) -> float:
    """The short run: start-up and ``TRIAL_ITERATIONS`` iterations, at most ``TRIAL_CAP_S``."""
    return min(STARTUP_S + TRIAL_ITERATIONS * iteration_s, TRIAL_CAP_S)


def billed_seconds(setup_s: float, run_s: float) -> float:
    """A trial's billed seconds as expected: the mean boot, then ``setup_s`` and ``run_s``."""
    return max(MIN_BILLED_S, sum(BOOT_S) / 2 + setup_s + run_s)


def trial_seconds(candidate: Candidate, profile: JobProfile, prediction: Prediction) -> float:
    """The billed seconds of a trial as predicted: the mean boot, set-up and the short run."""
    return billed_seconds(setup_seconds(candidate, profile), run_seconds(prediction.iteration_s))
