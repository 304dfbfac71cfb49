"""The result JSON of a run (schema version 1, documented in the README), and its merge over ranks.

No torch here: rank results are plain dicts, so the search engine can read them too.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cherrypick.workloads.base import BREAKDOWN_KEYS, TrialResult
from cherrypick.workloads.cnn.arch import LayerAnalysis
from cherrypick.workloads.cnn.config import TrainConfig

from cherrypick.trials import TrialStatus

__all__ = [
    "SCHEMA_VERSION",
    "RunFacts",
    "failure",
    "merge",
    "parse_result",
    "summarize",
    "write_result",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunFacts:
    """What one process measured, in plain numbers (see ``trainer.Iteration``)."""

    wall_ms: Sequence[float]
    breakdowns: Sequence[Mapping[str, float]]  # one per steady iteration; profiled ones if any
    layer_forward: Sequence[Sequence[float]]  # per profiled iteration, per layer
    layer_backward: Sequence[Sequence[float]]
    profiled_iterations: Sequence[int]
    startup_s: float
    samples_per_epoch: int
    world_size: int
    rank: int
    peak_gpu_bytes: int | None
    peak_host_rss_bytes: int
    first_loss: float
    last_loss: float


def summarize(
    config: TrainConfig,
    facts: RunFacts,
    analysis: Sequence[LayerAnalysis],
    environment: Mapping[str, Any],
) -> dict[str, Any]:
    """The result of one process, from its measurements and the analytic layer costs."""
    steady = list(facts.wall_ms[config.warmup :])
    iteration_ms = statistics.median(steady)
    startup = max(0.0, facts.startup_s)
    breakdown = {k: statistics.fmean(b[k] for b in facts.breakdowns) for k in BREAKDOWN_KEYS}
    rank = {
        "rank": facts.rank,
        "host": environment.get("host", ""),
        "iteration_ms": iteration_ms,
        "startup_seconds": startup,
        "breakdown_ms": breakdown,
        "peak_gpu_bytes": facts.peak_gpu_bytes,
        "peak_host_rss_bytes": facts.peak_host_rss_bytes,
    }
    result = {
        **_header("ok", "", config, environment),
        "iterations": {
            "wall_ms": list(facts.wall_ms),
            "warmup": config.warmup,
            "warmup_ms": sum(facts.wall_ms[: config.warmup]),
            "steady": _steady_stats(steady),
            "profiled": list(facts.profiled_iterations),
        },
        "profile": {
            "enabled": config.profile,
            "sample_every": config.sample_every,
            "breakdown_from": "layers" if facts.profiled_iterations else "phases",
        },
        "loss": {"first": facts.first_loss, "last": facts.last_loss},
        "layers": _layers(facts, analysis),
        "ranks": [rank],
        "job": _job(config, facts.samples_per_epoch, facts.world_size),
    }
    return _with_totals(result, iteration_ms, startup, breakdown)


def merge(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One result for a DDP run from every rank's: the slowest rank sets the pace."""
    base = dict(results[0])
    ranks = [rank for result in results for rank in result["ranks"]]
    iteration_ms = max(rank["iteration_ms"] for rank in ranks)
    startup = max(rank["startup_seconds"] for rank in ranks)
    breakdown = {k: statistics.fmean(r["breakdown_ms"][k] for r in ranks) for k in BREAKDOWN_KEYS}
    base["ranks"] = ranks
    per_rank = (result["layers"] for result in results)
    base["layers"] = [_mean_rows(rows) for rows in zip(*per_rank, strict=True)]
    return _with_totals(base, iteration_ms, startup, breakdown)


def failure(
    status: str, message: str, config: Mapping[str, Any], environment: Mapping[str, Any]
) -> dict[str, Any]:
    """The result of a run that ended in ``oom`` or ``error``: the fixed keys, empty."""
    return {
        **_header(status, message, config, environment),
        "iteration_ms": None,
        "throughput_images_s": None,
        "projected_job_seconds": None,
        "breakdown_ms": None,
        "layers": [],
    }


def _header(
    status: str, message: str, config: TrainConfig | Mapping[str, Any], env: Mapping[str, Any]
) -> dict[str, Any]:
    settings = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    return {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "message": message,
        "environment": dict(env),
        "config": settings,
    }


def _with_totals(
    result: dict[str, Any], iteration_ms: float, startup: float, breakdown: dict[str, float]
) -> dict[str, Any]:
    job = result["job"]
    seconds = iteration_ms / 1000
    result.update(
        iteration_ms=iteration_ms,
        throughput_images_s=job["global_batch"] / seconds,
        startup_seconds=startup,
        projected_job_seconds=startup + job["iterations"] * seconds,
        breakdown_ms=breakdown,
        memory={
            "peak_gpu_bytes": _max_or_none(r["peak_gpu_bytes"] for r in result["ranks"]),
            "peak_host_rss_bytes": max(r["peak_host_rss_bytes"] for r in result["ranks"]),
        },
    )
    return result


def _job(config: TrainConfig, samples_per_epoch: int, world_size: int) -> dict[str, Any]:
    return {
        "epochs": config.epochs,
        "samples_per_epoch": samples_per_epoch,
        "world_size": world_size,
        "global_batch": config.batch_size * world_size,
        "iterations": config.job_iterations(samples_per_epoch, world_size),
    }


def _steady_stats(steady: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(steady),
        "mean_ms": statistics.fmean(steady),
        "median_ms": statistics.median(steady),
        "p90_ms": float(np.percentile(steady, 90)),
        "stdev_ms": statistics.pstdev(steady),
    }


def _layers(facts: RunFacts, analysis: Sequence[LayerAnalysis]) -> list[dict[str, Any]]:
    rows = []
    for index, cost in enumerate(analysis):
        row: dict[str, Any] = {"name": cost.name}
        for phase, samples in (
            ("forward", facts.layer_forward),
            ("backward", facts.layer_backward),
        ):
            row.update(_time_stats(phase, [sample[index] for sample in samples]))
        row.update(
            forward_flops=cost.forward_flops,
            backward_flops=cost.backward_flops,
            bytes=cost.bytes,
            forward_bytes=cost.forward_bytes,
            backward_bytes=cost.backward_bytes,
            params=cost.params,
            output_shape=list(cost.output_shape),
        )
        rows.append(row)
    return rows


def _time_stats(phase: str, values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {f"{phase}_ms": None, f"{phase}_p50_ms": None, f"{phase}_p90_ms": None}
    return {
        f"{phase}_ms": statistics.fmean(values),
        f"{phase}_p50_ms": float(np.percentile(values, 50)),
        f"{phase}_p90_ms": float(np.percentile(values, 90)),
    }


def _mean_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A layer row averaged over ranks (times only; the costs are the same on every rank)."""
    merged = dict(rows[0])
    for key, value in rows[0].items():
        if key.endswith("_ms") and value is not None:
            merged[key] = statistics.fmean(row[key] for row in rows)
    return merged


def _max_or_none(values: Any) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def write_result(result: Mapping[str, Any], path: Path) -> None:
    """Write atomically, so whoever fetches the file never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(result, indent=1))
    partial.replace(path)


def parse_result(raw: bytes) -> TrialResult:
    """The observation in a result file; anything malformed is an ``error`` saying what."""
    try:
        result = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return TrialResult(TrialStatus.ERROR, None, {}, f"result is not JSON: {exc}")
    if not isinstance(result, dict):
        return TrialResult(TrialStatus.ERROR, None, {}, "result is not a JSON object")
    problem = _schema_problem(result)
    if problem:
        return TrialResult(TrialStatus.ERROR, None, result, problem)
    runtime = result["projected_job_seconds"] if result["status"] == "ok" else None
    message = str(result.get("message", ""))
    return TrialResult(TrialStatus(result["status"]), runtime, result, message)


def _schema_problem(result: Mapping[str, Any]) -> str:
    if result.get("schema_version") != SCHEMA_VERSION:
        return (
            f"unsupported schema_version {result.get('schema_version')!r} (want {SCHEMA_VERSION})"
        )
    if result.get("status") not in ("ok", "oom", "error"):
        return f"unknown status {result.get('status')!r}"
    runtime = result.get("projected_job_seconds")
    ok_runtime = isinstance(runtime, (int, float)) and math.isfinite(runtime) and runtime > 0
    if result["status"] == "ok" and not ok_runtime:
        return f"status ok but projected_job_seconds is {runtime!r}"
    return ""
