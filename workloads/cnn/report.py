"""A result as text (``cherrypick profile`` prints it) and as a PNG of layers and breakdown."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cherrypick.workloads.base import BREAKDOWN_KEYS

__all__ = ["format_report", "plot_result"]


def format_report(result: Mapping[str, Any]) -> str:
    """The headline numbers, the per-layer table and the breakdown of one result."""
    if result["status"] != "ok":
        return f"status: {result['status']}: {result['message']}"
    config, env = result["config"], result["environment"]
    lines = [
        f"{config['model']} batch {config['batch_size']} x {result['job']['world_size']} on "
        f"{env['device_name']} ({env['device']}): {result['iteration_ms']:.2f} ms/iteration, "
        f"{result['throughput_images_s']:.1f} images/s, projected job "
        f"{result['projected_job_seconds'] / 3600:.2f} h",
        "",
        f"{'layer':<10} {'fwd ms':>8} {'p50':>8} {'p90':>8} {'bwd ms':>8} {'p50':>8} {'p90':>8}"
        f" {'fwd GFLOP':>10} {'bwd GFLOP':>10} {'MB':>9}",
    ]
    lines += [_layer_line(row) for row in result["layers"]]
    breakdown = result["breakdown_ms"]
    total = sum(breakdown.values())
    lines += ["", f"breakdown per iteration ({result['profile']['breakdown_from']}):"]
    lines += [
        f"  {key:<14} {breakdown[key]:9.3f} ms {100 * breakdown[key] / total:6.1f} %"
        for key in BREAKDOWN_KEYS
    ]
    return "\n".join(lines)


def _layer_line(row: Mapping[str, Any]) -> str:
    times = [
        row[f"{phase}{stat}_ms"]
        for phase in ("forward", "backward")
        for stat in ("", "_p50", "_p90")
    ]
    shown = " ".join(f"{t:8.3f}" if t is not None else f"{'-':>8}" for t in times)
    return (
        f"{row['name']:<10} {shown} {row['forward_flops'] / 1e9:10.3f}"
        f" {row['backward_flops'] / 1e9:10.3f} {row['bytes'] / 1e6:9.1f}"
    )


def plot_result(result: Mapping[str, Any], path: Path) -> Path:
    """Write a PNG: per-layer forward/backward bars, and the breakdown as one stacked bar."""
    from matplotlib.figure import Figure  # the Agg canvas, without touching pyplot's backend

    fig = Figure(figsize=(11, 6.5), layout="constrained")
    layers_ax, breakdown_ax = fig.subplots(2, 1, height_ratios=(3, 1))
    rows = result["layers"]
    names = [row["name"] for row in rows]
    positions = range(len(rows))
    for offset, phase in ((-0.2, "forward"), (0.2, "backward")):
        times = [row[f"{phase}_ms"] or 0.0 for row in rows]
        layers_ax.bar([p + offset for p in positions], times, width=0.4, label=phase)
    layers_ax.set_xticks(list(positions), names, rotation=45, ha="right")
    layers_ax.set_ylabel("ms per iteration")
    layers_ax.set_title(f"{result['config']['model']}: time per layer (mean)")
    layers_ax.legend()
    left = 0.0
    for key in BREAKDOWN_KEYS:
        value = max(0.0, result["breakdown_ms"][key])
        breakdown_ax.barh([0], [value], left=left, label=key)
        left += value
    breakdown_ax.set_yticks([])
    breakdown_ax.set_xlabel("ms per iteration")
    breakdown_ax.legend(ncols=len(BREAKDOWN_KEYS), loc="upper center", bbox_to_anchor=(0.5, -0.5))
    fig.savefig(path, dpi=110)
    return path
