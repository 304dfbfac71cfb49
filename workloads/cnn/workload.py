"""The CNN training workload: what a search runs on each candidate (a ``Workload``).

Parameters (a search file's ``workload:`` section) are :class:`TrainConfig`'s fields, plus
``install`` (the pip requirement that puts PyTorch on a machine whose image has none; the search
ships cherrypick itself), ``python`` (the interpreter on the machine) and ``calibration`` (a result
JSON from ``cherrypick profile`` whose measured times the simulator may scale from).

Every path is relative: the search runs the commands in the node's own trial folder, so trials
that share a machine (or hosts that share one, on loopback) never see each other's files.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cherrypick.workloads.base import JobProfile, LayerCost, TrialResult, Workload
from cherrypick.workloads.cnn.config import TrainConfig
from cherrypick.workloads.cnn.result import parse_result

from cherrypick.errors import InputError, ValidationError

if TYPE_CHECKING:
    from cherrypick.providers.base import Candidate

__all__ = ["CNNWorkload"]

_SOURCE = "workload 'cnn'"
_RUN_DIR = "run"
#: ``cherrypick.workloads.cnn.runner.PROGRESS_MARK`` (that module imports torch; this one must not).
_PROGRESS_MARK = "cherrypick-progress:"
_HAS_TORCH = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"
#: The PyTorch this version is tested with (the ``torch`` extra of the package).
TORCH = "torch==2.13.0"


class CNNWorkload(Workload):
    """Profiled CNN training (``python -m cherrypick.workloads.cnn.train``), under torchrun if
    distributed."""

    name = "cnn"
    result_path = f"{_RUN_DIR}/result.json"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        settings = dict(params or {})
        self.install = _text(settings.pop("install", TORCH), "install")
        self.python = _text(settings.pop("python", "python3"), "python")
        calibration = settings.pop("calibration", None)
        self.config = TrainConfig.from_mapping(settings, source=_SOURCE)
        self.calibration = _calibration(calibration) if calibration is not None else None
        self._profile: JobProfile | None = None  # the config is frozen: computed once

    def setup_commands(self) -> list[str]:
        """Use the image's PyTorch when it has one, else install it (finding the module costs
        milliseconds; importing torch to check would cost seconds on every trial)."""
        python = shlex.quote(self.python)
        install = f"{python} -m pip install --quiet {shlex.quote(self.install)}"
        return [f"{python} -c {shlex.quote(_HAS_TORCH)} || {install}"]

    def command(
        self, candidate: Candidate, node_rank: int, master_addr: str, master_port: int
    ) -> str:
        gpus = candidate.offering.gpus_per_node
        device = self.config.device if self.config.device != "auto" else "cuda" if gpus else "cpu"
        settings = {**self.config.to_dict(), "device": device}
        if not gpus and not self.config.threads:
            settings["threads"] = candidate.offering.vcpus  # a CPU host's size is its threads
        config_path = f"{_RUN_DIR}/run.yaml"  # JSON is YAML
        prepare = (
            f"mkdir -p {_RUN_DIR} && printf '%s' {shlex.quote(json.dumps(settings))}"
            f" > {config_path}"
        )
        train = (
            f"-m cherrypick.workloads.cnn.train --config {config_path} --output {self.result_path}"
        )
        python = shlex.quote(self.python)
        if candidate.nodes == 1 and gpus <= 1:
            return f"{prepare} && {python} {train}"
        launcher = (
            f"{python} -m torch.distributed.run --nnodes {candidate.nodes}"
            f" --nproc-per-node {max(gpus, 1)} --node-rank {node_rank}"
            f" --master-addr {shlex.quote(master_addr)} --master-port {master_port}"
        )
        return f"{prepare} && {launcher} {train}"

    def parse_result(self, raw: bytes) -> TrialResult:
        return parse_result(raw)

    def progress(self, output: str) -> str | None:
        """How far the run is ("iteration 12 of 50"), from the end of its output."""
        lines = output.splitlines()
        if not output.endswith("\n"):
            lines = lines[:-1]  # a line still being written
        for line in reversed(lines):
            text = line.removeprefix(_PROGRESS_MARK).strip()
            if line.startswith(_PROGRESS_MARK) and text.endswith(tuple("0123456789")):
                return text
        return None

    def simulation_profile(self) -> JobProfile:
        if self._profile is None:
            self._profile = self._simulation_profile()
        return self._profile

    def _simulation_profile(self) -> JobProfile:
        config = self.config
        samples = config.samples_per_epoch()
        if samples is None:
            raise ValidationError(_SOURCE, "set dataset_size to simulate folder data", field="data")
        costs = config.layer_costs()
        return JobProfile(
            layers=tuple(
                LayerCost(c.name, c.forward_flops, c.backward_flops, c.bytes, c.params)
                for c in costs
            ),
            batch_size=config.batch_size,
            samples_per_epoch=samples,
            epochs=config.epochs,
            parameter_count=sum(c.params for c in costs),
            activation_bytes_per_sample=sum(c.saved_bytes for c in costs) / config.batch_size,
            input_bytes_per_sample=3 * config.image_size**2 * 4,
            precision=config.precision,
            data=config.data_kind,
            calibration=self.calibration,
            channels_last=config.channels_last,
        )


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(_SOURCE, "expected a non-empty string", field=field)
    return value


def _calibration(path: Any) -> dict[str, Any]:
    """The measured part of a result file: device, iteration, breakdown and layer times."""
    try:
        result = json.loads(Path(_text(path, "calibration")).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{_SOURCE}: cannot read calibration {path}: {exc}") from None
    if not isinstance(result, dict) or result.get("status") != "ok":
        raise ValidationError(str(path), "not the result of a successful run", field="status")
    keys = ("environment", "config", "iteration_ms", "breakdown_ms")
    layers = [
        {k: row.get(k) for k in ("name", "forward_ms", "backward_ms")} for row in result["layers"]
    ]
    return {**{k: result.get(k) for k in keys}, "layers": layers}
