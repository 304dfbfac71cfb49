"""The profiled CNN training workload.

``profile_run(config)`` trains in this process and returns the result dict; the CLI
``python -m cherrypick.workloads.cnn.train`` wraps it for VMs (exit codes, result file);
``CNNWorkload`` is what a search uses. The specs (``arch``) and the configuration import no torch;
``profile_run`` imports it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cherrypick.workloads.cnn.arch import MODELS, analyze, architecture
from cherrypick.workloads.cnn.config import TrainConfig
from cherrypick.workloads.cnn.report import format_report, plot_result
from cherrypick.workloads.cnn.result import SCHEMA_VERSION, parse_result
from cherrypick.workloads.cnn.workload import CNNWorkload

if TYPE_CHECKING:
    from cherrypick.workloads.cnn.runner import profile_run

__all__ = [
    "MODELS",
    "SCHEMA_VERSION",
    "CNNWorkload",
    "TrainConfig",
    "analyze",
    "architecture",
    "format_report",
    "parse_result",
    "plot_result",
    "profile_run",
]


def __getattr__(name: str) -> Any:
    if name == "profile_run":  # imports torch
        from cherrypick.workloads.cnn.runner import profile_run

        return profile_run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
