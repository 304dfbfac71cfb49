"""The performance model: a training job's iteration time, memory and runtime on any catalog GPU,
from its layers' FLOPs and bytes. It is a real search's prior and the simulated provider's truth."""

from cherrypick.perfmodel.model import PerformanceModel, job_profile
from cherrypick.perfmodel.predict import STARTUP_S, Prediction, predict

__all__ = ["STARTUP_S", "PerformanceModel", "Prediction", "job_profile", "predict"]
