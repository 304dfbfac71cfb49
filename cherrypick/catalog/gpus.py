"""Reading the GPU datasheet file (``configs/gpus.yaml``) into validated ``GpuSpec`` values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cherrypick._text import yaml_with_lines
from cherrypick.errors import ValidationError

__all__ = ["GpuSpec", "parse_gpus"]


@dataclass(frozen=True)
class GpuSpec:
    """Datasheet figures of one GPU model, per GPU. TFLOP/s are dense peaks; None: no fast path."""

    name: str
    memory_gib: float
    fp32_tflops: float
    tf32_tflops: float | None
    fp16_tflops: float | None
    bf16_tflops: float | None
    memory_bandwidth_gbs: float
    nvlink_gbs: float | None
    pcie_gen: int
    source: str

    @property
    def half_precision_tflops(self) -> float:
        """Peak FP16 rate; the FP32 rate on GPUs without faster FP16 units (K80, M60, P4)."""
        return self.fp16_tflops if self.fp16_tflops is not None else self.fp32_tflops


_NUMBERS = ("memory_gib", "fp32_tflops", "memory_bandwidth_gbs")
_OPTIONAL_NUMBERS = ("tf32_tflops", "fp16_tflops", "bf16_tflops", "nvlink_gbs")
_FIELDS = (*_NUMBERS, *_OPTIONAL_NUMBERS, "pcie_gen", "source")


def parse_gpus(text: str, source: str) -> dict[str, GpuSpec]:
    """Parse the YAML text of a GPU file; errors name the file, line and field."""
    data, lines = yaml_with_lines(text, source)
    if not isinstance(data, dict) or not data:
        raise ValidationError(source, "expected a mapping of GPU names to their figures")
    return {
        str(name): _spec(str(name), entry, _Where(source, lines, str(name)))
        for name, entry in data.items()
    }


@dataclass(frozen=True)
class _Where:
    source: str
    lines: dict[tuple[str, ...], int]
    gpu: str

    def error(self, message: str, field: str | None = None) -> ValidationError:
        path = (self.gpu,) if field is None else (self.gpu, field)
        line = self.lines.get(path, self.lines.get((self.gpu,)))
        return ValidationError(self.source, message, line=line, field=".".join(path))


def _spec(name: str, entry: Any, where: _Where) -> GpuSpec:
    if not isinstance(entry, dict):
        raise where.error("expected a mapping of figures")
    unknown = sorted(set(map(str, entry)) - set(_FIELDS))
    if unknown:
        raise where.error(f"unknown field; known: {', '.join(_FIELDS)}", unknown[0])
    numbers = {f: _number(entry, f, where) for f in _NUMBERS}
    optional = {f: _optional_number(entry, f, where) for f in _OPTIONAL_NUMBERS}
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise where.error("missing source (a URL or document name)", "source")
    return GpuSpec(
        name=name,
        memory_gib=numbers["memory_gib"],
        fp32_tflops=numbers["fp32_tflops"],
        tf32_tflops=optional["tf32_tflops"],
        fp16_tflops=optional["fp16_tflops"],
        bf16_tflops=optional["bf16_tflops"],
        memory_bandwidth_gbs=numbers["memory_bandwidth_gbs"],
        nvlink_gbs=optional["nvlink_gbs"],
        pcie_gen=_pcie_gen(entry, where),
        source=source.strip(),
    )


def _number(entry: dict[str, Any], field: str, where: _Where) -> float:
    value = _optional_number(entry, field, where)
    if value is None:
        raise where.error("missing value", field)
    return value


def _optional_number(entry: dict[str, Any], field: str, where: _Where) -> float | None:
    value = entry.get(field)
    if value is None:
        return None
    # bool is an int subclass: "yes" must not pass as 1 TFLOP/s
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(f"not a number: {value!r}", field)
    if not math.isfinite(value) or value <= 0:
        raise where.error(f"must be a positive number, got {value!r}", field)
    return float(value)


def _pcie_gen(entry: dict[str, Any], where: _Where) -> int:
    value = entry.get("pcie_gen")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise where.error(f"must be a PCIe generation (1, 2, ...), got {value!r}", "pcie_gen")
    return value
