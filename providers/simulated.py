"""The simulated provider: no network, no sleeping, deterministic for a seed.

It launches make-believe machines (failing with ``CapacityError`` at a configurable rate), and
answers each trial from the workload's own estimate or from the performance model
(``cherrypick.perfmodel``) of the workload's :class:`JobProfile` on the candidate's hardware,
times cloud-like noise; optionally its memory need departs from the model's too, so that the
model's out-of-memory verdict can be wrong (``memory_error``). Every random draw is seeded by a
stable hash of (seed, candidate, purpose), not by call order, so any order of trials, a resumed
search and an exhaustive sweep all see the same value for the same candidate.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from cherrypick.providers.base import (
    TAG_NODE_RANK,
    Candidate,
    ClusterInfo,
    Instance,
    InstanceState,
    LaunchRequest,
    Provider,
    ProvisionRecord,
    TrialRun,
)
from cherrypick.workloads.base import TrialResult, Workload

from cherrypick.catalog.gpus import GpuSpec
from cherrypick.errors import CapacityError, ProvisioningError, WorkloadError
from cherrypick.perfmodel import (
    STARTUP_S,
    PerformanceModel,
    Prediction,
    job_profile,
    memory_parts,
)
from cherrypick.perfmodel.trial import BOOT_S, SETUP_S, TRIAL_CAP_S, run_seconds, setup_seconds
from cherrypick.trials import TrialStatus

__all__ = ["Prediction", "SimulatedProvider"]


class SimulatedProvider(Provider):
    """A provider whose machines and trials are simulated (see the module docstring)."""

    name = "simulated"

    def __init__(
        self,
        seed: int = 0,
        *,
        gpus: Mapping[str, GpuSpec] | None = None,
        capacity_error_rate: float = 0.0,
        noise: float = 0.05,
        model_error: float = 0.10,
        memory_error: float = 0.0,
        boot_s: tuple[float, float] = BOOT_S,
    ) -> None:
        if not 0.0 <= capacity_error_rate <= 1.0:
            raise ValueError("capacity_error_rate must be in [0, 1]")
        if min(noise, model_error, memory_error) < 0 or not 0 <= boot_s[0] <= boot_s[1]:
            raise ValueError(
                "noise, model_error and memory_error must be >= 0 and boot_s an ordered"
                " (low, high) pair"
            )
        self.seed = seed
        self.model = PerformanceModel(gpus)
        self.capacity_error_rate = capacity_error_rate
        self.noise = noise
        self.model_error = model_error
        self.memory_error = memory_error
        self.boot_range = boot_s
        self._attempts: dict[str, int] = {}
        self._running: dict[str, Instance] = {}

    def run_instances(self, request: LaunchRequest) -> ProvisionRecord:
        candidate = request.candidate
        attempt = self._attempts.get(candidate.key, 0)
        self._attempts[candidate.key] = attempt + 1
        if self._rng(candidate, "capacity", attempt).random() < self.capacity_error_rate:
            raise CapacityError(
                self.name,
                f"no capacity for {candidate.nodes} x {candidate.offering.instance_type}"
                f" (simulated, attempt {attempt + 1})",
                region=request.placement.region,
            )
        instances = [self._instance(request, attempt, node) for node in range(candidate.nodes)]
        for instance in instances:
            self._running[instance.instance_id] = instance
        ids = tuple(i.instance_id for i in instances)
        return ProvisionRecord(self.name, request.placement, request.cluster_name, ids)

    def wait_instances(self, record: ProvisionRecord, timeout_s: float) -> ClusterInfo:
        gone = [i for i in record.instance_ids if i not in self._running]
        if gone:
            raise ProvisioningError(self.name, f"instances not running: {', '.join(gone)}")
        machines = tuple(self._running[i] for i in record.instance_ids)
        return ClusterInfo(self.name, record.cluster_name, machines)

    def query_instances(self, region: str, instance_ids: Sequence[str]) -> dict[str, InstanceState]:
        return {
            i: InstanceState.RUNNING if i in self._running else InstanceState.TERMINATED
            for i in instance_ids
        }

    def terminate_instances(self, region: str, instance_ids: Sequence[str]) -> None:
        for instance_id in instance_ids:
            self._running.pop(instance_id, None)

    def list_launched(self, tags: Mapping[str, str]) -> Sequence[Instance]:
        return [
            i for i in self._running.values() if all(i.tags.get(k) == v for k, v in tags.items())
        ]

    def execute(
        self,
        candidate: Candidate,
        instances: Sequence[Instance],
        workload: Workload,
        timeout_s: float,
    ) -> TrialRun:
        """Answer the trial from the model instead of running a command (this provider's
        runner): simulated seconds only, nothing sleeps."""
        factor = self.noise_factor(candidate)
        boot = float(self._rng(candidate, "boot").uniform(*self.boot_range))
        estimate = workload.estimate_runtime(candidate)
        if estimate is not None:
            runtime = estimate * factor
            result = TrialResult(
                TrialStatus.OK, runtime, {"simulated": True, "projected_job_seconds": runtime}
            )
            return TrialRun(result, boot, SETUP_S, min(runtime, TRIAL_CAP_S))
        if candidate.offering.gpus_per_node == 0:
            raise WorkloadError("the simulator models GPU machines only; run without --dry-run")
        profile = job_profile(workload)
        prediction = self.model.predict(candidate, profile)
        estimated = memory_parts(profile)[1]
        need = prediction.memory_bytes + estimated * (self.memory_factor(candidate) - 1.0)
        result, run_s = _trial(prediction, need, factor, timeout_s)
        return TrialRun(result, boot, setup_seconds(candidate, profile), run_s)

    def noise_factor(self, candidate: Candidate) -> float:
        """How far the simulated cloud is from the noise-free model for ``candidate``.

        Two lognormal factors, both median 1. The model's own error (sigma ``model_error``): the
        real machines differ from any performance model, by GPU model (achievable fractions of
        peak differ from our constants) and, on several nodes, by the provider's network (the
        ring model's bandwidth is nominal); the network part grows with log2(nodes). And the run's
        noise (sigma ``noise``), keyed by the hardware (provider, instance type, nodes), not the
        region: the same machines run the same in every region, so a region differs only by its
        price. A search that uses the performance model as its prior (the default) therefore
        faces a model that is wrong by about as much as published predictors are (Habitat,
        USENIX ATC'21: 11.8% average error).
        """
        o = candidate.offering
        hardware = f"{o.provider}/{o.instance_type}x{candidate.nodes}"
        z_run = self._normal(hardware, "noise")
        z_gpu = self._normal(o.gpu, "model-gpu")
        z_net = self._normal(o.provider, "model-network") * math.log2(candidate.nodes) / 2
        return float(math.exp(self.noise * z_run + self.model_error * (z_gpu + z_net)))

    def memory_factor(self, candidate: Candidate) -> float:
        """How far the simulated cloud's memory overheads are from the model's for ``candidate``.

        A lognormal factor, median 1 and sigma ``memory_error`` (0, off, by default), one per GPU
        model, on the items the memory model estimates (allocator slack, library workspaces, CUDA
        context: ``cherrypick.perfmodel.model.ESTIMATED_MEMORY``); what it counts (weights,
        optimiser state, saved activations) it gets right. They differ by GPU because the
        kernels, the cuDNN algorithms and their workspaces do. At 0.5, what the prior assumes
        (``MEMORY_SIGMA``), a job near a GPU's memory fits or not as the prior's odds say.
        """
        return float(math.exp(self.memory_error * self._normal(candidate.offering.gpu, "memory")))

    def _normal(self, key: str, purpose: str) -> float:
        rng = np.random.default_rng(_stable_seed(self.seed, key, purpose, 0))
        return float(rng.standard_normal())

    def _rng(self, candidate: Candidate, purpose: str, attempt: int = 0) -> np.random.Generator:
        return np.random.default_rng(_stable_seed(self.seed, candidate.key, purpose, attempt))

    def _instance(self, request: LaunchRequest, attempt: int, node: int) -> Instance:
        candidate = request.candidate
        digest = _stable_seed(self.seed, candidate.key, "instance", attempt, node)
        return Instance(
            provider=self.name,
            instance_id=f"sim-{digest:016x}",
            region=request.placement.region,
            node_rank=node,
            internal_ip=f"10.0.0.{node + 1}",
            tags={**request.tags, TAG_NODE_RANK: str(node)},
            extra={"candidate": candidate.key},
        )


def _stable_seed(*parts: Any) -> int:
    """A 64-bit seed from the parts, the same in every process (unlike ``hash``)."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _trial(
    prediction: Prediction, need: float, factor: float, timeout_s: float
) -> tuple[TrialResult, float]:
    """The observation and how long the short trial ran; ``need``: its peak memory, bytes."""
    details = _details(prediction, need, factor)
    if need > prediction.memory_limit_bytes:
        gib, limit = need / 2**30, prediction.memory_limit_bytes / 2**30
        message = f"CUDA out of memory (simulated): needs {gib:.1f} GiB of {limit:.1f} GiB"
        return TrialResult(TrialStatus.OOM, None, details, message), STARTUP_S
    run_s = run_seconds(prediction.iteration_s * factor)
    if run_s > timeout_s:
        message = f"trial ran past its {timeout_s:.0f} s limit (simulated)"
        return TrialResult(TrialStatus.TIMEOUT, None, details, message), timeout_s
    runtime = prediction.runtime_s * factor
    return TrialResult(TrialStatus.OK, runtime, details), run_s


def _details(prediction: Prediction, need: float, factor: float) -> dict[str, Any]:
    """A dict shaped like the CNN workload's result JSON, noise applied to every time."""
    iteration_s = prediction.iteration_s * factor
    return {
        "simulated": True,
        "noise_factor": factor,
        "iteration_ms": iteration_s * 1000,
        "throughput_images_s": prediction.global_batch / iteration_s,
        "projected_job_seconds": prediction.runtime_s * factor,
        "breakdown_ms": {k: v * factor * 1000 for k, v in prediction.breakdown_s.items()},
        "layers": [
            {
                "name": t.name,
                "forward_ms": t.forward_s * factor * 1000,
                "backward_ms": t.backward_s * factor * 1000,
            }
            for t in prediction.layers
        ],
        "memory": {"peak_gpu_bytes": need},
        "job": {"global_batch": prediction.global_batch, "iterations": prediction.iterations},
    }
