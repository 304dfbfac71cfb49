"""Scaling a profile measured on one GPU to another, layer by layer (as Habitat does).

Habitat (Yu et al., USENIX ATC'21) predicts an iteration on a target GPU from one measured on
another with 11.8 % average error, scaling each kernel by the ratio of the GPUs' compute or memory
bandwidth depending on whether the kernel is compute- or memory-bound. We do the same per named
layer: the layer's roofline on the measured GPU says what fraction of its time is compute, and
that fraction of the measured time scales by the compute ratio, the rest by the bandwidth ratio.
On the measured GPU itself the factor is exactly 1, so a calibration reproduces what was measured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cherrypick.catalog.gpus import GpuSpec
from cherrypick.errors import InputError
from cherrypick.perfmodel.predict import (
    MEMORY_EFFICIENCY,
    LayerTime,
    Parts,
    compute_tflops,
    pcie_gbs,
)
from cherrypick.workloads.base import JobProfile, LayerCost

__all__ = ["calibrated_parts", "gpu_key"]


def gpu_key(device_name: str, gpus: Mapping[str, GpuSpec]) -> str:
    """The gpus.yaml key of a CUDA device name, e.g. "NVIDIA A100-SXM4-80GB" -> "A100-80GB".

    A key matches when its model token ("A100") is a token of the name; a variant key
    ("A100-80GB", "H100-NVL") wins over the plain one when its suffix is a token too.
    """
    tokens = set(re.split(r"[\s\-_/]+", device_name.upper()))
    matches = [key for key in gpus if key.upper().split("-")[0] in tokens]
    variants = [k for k in matches if "-" in k and set(k.upper().split("-")[1:]) <= tokens]
    plain = [k for k in matches if "-" not in k]
    chosen = variants or plain
    if len(chosen) != 1:
        known = ", ".join(sorted(gpus))
        raise InputError(
            f"calibration device {device_name!r} is not a known GPU; known: {known}"
            " (set 'gpu' in the calibration to one of them)"
        )
    return chosen[0]


def calibrated_parts(
    profile: JobProfile,
    calibration: Mapping[str, Any],
    target: GpuSpec,
    gpus: Mapping[str, GpuSpec],
) -> Parts:
    """The GPU-side phases on ``target``, scaled from the measured ones."""
    measured = gpus[_measured_key(calibration, gpus)]
    batch_ratio = profile.batch_size / _measured_batch(calibration, profile)
    rows = _measured_layers(calibration, profile)
    layers = tuple(
        LayerTime(
            cost.name,
            fwd * batch_ratio * _factor(cost, measured, target, profile.precision),
            bwd * batch_ratio * _factor(cost, measured, target, profile.precision),
        )
        for cost, (fwd, bwd) in zip(profile.layers, rows, strict=True)
    )
    breakdown = calibration.get("breakdown_ms") or {}
    bandwidth = measured.memory_bandwidth_gbs / target.memory_bandwidth_gbs
    return Parts(
        layers=layers,
        h2d=_ms(breakdown, "h2d") * batch_ratio * pcie_gbs(measured) / pcie_gbs(target),
        optimizer=_ms(breakdown, "optimizer") * bandwidth,
        unattributed=_ms(breakdown, "unattributed"),  # host-side overhead: not the GPU's
    )


def _factor(cost: LayerCost, measured: GpuSpec, target: GpuSpec, precision: str) -> float:
    """Target time over measured time for one layer, weighted by how compute-bound it is."""
    flops = cost.forward_flops + cost.backward_flops
    compute = flops / (compute_tflops(measured, precision) * 1e12)
    memory = cost.bytes / (measured.memory_bandwidth_gbs * MEMORY_EFFICIENCY * 1e9)
    if compute + memory == 0:
        return 1.0
    share = compute / (compute + memory)
    compute_ratio = compute_tflops(measured, precision) / compute_tflops(target, precision)
    bandwidth_ratio = measured.memory_bandwidth_gbs / target.memory_bandwidth_gbs
    return share * compute_ratio + (1 - share) * bandwidth_ratio


def _measured_key(calibration: Mapping[str, Any], gpus: Mapping[str, GpuSpec]) -> str:
    explicit = calibration.get("gpu")
    if isinstance(explicit, str):
        return gpu_key(explicit, gpus) if explicit not in gpus else explicit
    environment = calibration.get("environment") or {}
    if environment.get("device") != "cuda" and "device_name" not in environment:
        raise InputError("the calibration was not measured on a GPU (environment.device)")
    return gpu_key(str(environment.get("device_name", "")), gpus)


def _measured_batch(calibration: Mapping[str, Any], profile: JobProfile) -> int:
    config = calibration.get("config") or {}
    if config.get("precision", profile.precision) != profile.precision:
        raise InputError(
            f"the calibration ran in {config['precision']}, the job in {profile.precision};"
            " profile again in the job's precision"
        )
    batch = config.get("batch_size", profile.batch_size)
    return batch if isinstance(batch, int) and batch > 0 else profile.batch_size


def _measured_layers(
    calibration: Mapping[str, Any], profile: JobProfile
) -> list[tuple[float, float]]:
    rows = calibration.get("layers") or []
    names = [str(row.get("name")) for row in rows]
    wanted = [layer.name for layer in profile.layers]
    if names != wanted:
        raise InputError(
            f"the calibration's layers ({', '.join(names) or 'none'}) are not the job's"
            f" ({', '.join(wanted)}); profile the same model"
        )
    times = [(row.get("forward_ms"), row.get("backward_ms")) for row in rows]
    if not all(isinstance(f, int | float) and isinstance(b, int | float) for f, b in times):
        raise InputError("the calibration has no per-layer times; profile with profile: true")
    return [(f / 1000, b / 1000) for f, b in times]


def _ms(breakdown: Mapping[str, Any], key: str) -> float:
    value = breakdown.get(key)
    return float(value) / 1000 if isinstance(value, int | float) else 0.0
