"""The workload interface: typed values, the registry, and a user's own workload."""

from __future__ import annotations

from typing import Any

import pytest
from cherrypick.providers.base import Candidate, Offering
from cherrypick.workloads import (
    JobProfile,
    LayerCost,
    TrialResult,
    Workload,
    create_workload,
    workload_registry,
)

from cherrypick.errors import UnknownNameError

OFFERING = Offering("aws", "us-east-1", "g5.xlarge", 4, 16, "A10G", 1, 24, "pcie", 1.0)


class EchoWorkload(Workload):
    """What a user writes: a command and a parser; no profile, no estimate."""

    name = "echo"
    result_path = "/tmp/echo.txt"

    def __init__(self, params: dict[str, Any]) -> None:
        self.seconds = float(params.get("seconds", 1))

    def setup_commands(self) -> list[str]:
        return []

    def command(self, candidate: Candidate, node_rank: int, master_addr: str, port: int) -> str:
        return f"echo {self.seconds} > {self.result_path}"

    def parse_result(self, raw: bytes) -> TrialResult:
        return TrialResult("ok", float(raw), {"raw": raw.decode()})


def test_trial_result_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        TrialResult("fine", 1.0)


def test_trial_result_feasible_only_when_ok_with_runtime() -> None:
    assert TrialResult("ok", 12.0).feasible
    assert not TrialResult("oom", None, message="CUDA out of memory").feasible
    assert not TrialResult("timeout", None).feasible
    assert TrialResult("error", None).details == {}


def test_job_profile_totals_its_layers() -> None:
    layers = (LayerCost("a", 10.0, 20.0, 5.0, 3), LayerCost("b", 1.0, 2.0, 1.0, 0))
    profile = JobProfile(layers, 32, 1000, 2.0, 3, 100.0, 12.0, "fp32", "synthetic")
    assert (profile.forward_flops, profile.backward_flops) == (11.0, 22.0)
    assert profile.calibration is None


def test_registry_knows_cnn_and_lists_names_on_a_miss() -> None:
    assert "cnn" in workload_registry.names()
    with pytest.raises(UnknownNameError, match="known: .*cnn"):
        create_workload("no-such-workload")


def test_a_user_workload_registers_and_gets_the_defaults() -> None:
    workload_registry.register("echo", EchoWorkload)
    workload = create_workload("echo", {"seconds": 3})
    assert workload.simulation_profile() is None
    assert workload.estimate_runtime(Candidate(OFFERING)) is None
    assert workload.parse_result(b"3.0").runtime_s == 3.0
    assert "echo 3.0" in workload.command(Candidate(OFFERING), 0, "10.0.0.1", 29500)
