"""The report's PNG plots. matplotlib is imported inside each function and drawn with the Agg canvas
directly (no pyplot, no global backend), so importing cherrypick stays fast and threads are safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cherrypick.report.frame import best_row_index, objective_of, pareto_front

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_breakdown", "plot_convergence", "plot_cost_runtime"]

_FEASIBLE, _INFEASIBLE, _FAILED, _FRONT, _BEST = (
    "#1f77b4",
    "#ff7f0e",
    "#d62728",
    "#2ca02c",
    "#9467bd",
)
_TOP_LAYERS = 20
_PARTS = ("data", "h2d", "forward", "backward", "optimizer", "communication", "unattributed")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path | str) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    return out


def _message(path: Path | str, title: str, text: str) -> Path:
    """A plot that says why there is nothing to plot, instead of failing the report."""
    figure = _figure(7.0, 2.4)
    ax = figure.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()
    return _save(figure, path)


def _hours_or_minutes(longest_s: float) -> tuple[float, str]:
    return (3600.0, "h") if longest_s >= 7200 else (60.0, "min")


def plot_convergence(frame: pd.DataFrame, path: Path | str) -> Path:
    """Best feasible objective value against the number of trials run; every trial as a dot."""
    from matplotlib.ticker import MaxNLocator

    objective = objective_of(frame)
    what = "job cost" if objective.kind == "cost" else "job runtime"
    title = f"Convergence: best feasible {what} so far"
    if frame.empty:
        return _message(path, title, "The store holds no trials yet.")
    scale, unit = 1.0, "USD"
    if objective.kind == "runtime":
        scale, unit = _hours_or_minutes(float(frame["runtime_s"].max(skipna=True) or 0.0))
    value = (frame["cost_usd"] if objective.kind == "cost" else frame["runtime_s"]) / scale
    step = pd.Series(range(1, len(frame) + 1), index=frame.index)
    ok = frame["status"] == "ok"
    figure = _figure(7.5, 4.2)
    ax = figure.add_subplot()
    ax.scatter(step[frame["feasible"]], value[frame["feasible"]], color=_FEASIBLE, label="feasible")
    over = ok & ~frame["feasible"]
    ax.scatter(step[over], value[over], color=_INFEASIBLE, marker="x", label="over the limit")
    failed = step[~ok & (frame["status"] != "running")]
    ax.plot(
        failed,
        [0.02] * len(failed),
        "v",
        color=_FAILED,
        label="failed (oom, error, ...)",
        transform=ax.get_xaxis_transform(),
    )
    ax.step(
        step, frame["best_so_far"] / scale, where="post", color=_BEST, lw=2, label="best so far"
    )
    ax.set_xlabel("trials run")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{what} ({unit})")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    return _save(figure, path)


def plot_cost_runtime(
    frame: pd.DataFrame,
    path: Path | str,
    max_runtime_s: float | None = None,
    *,
    max_cost_usd: float | None = None,
    recommended: int | None = None,
) -> Path:
    """Cost against runtime of every completed configuration, with the limits and Pareto front.

    Limits default to the frame's objective; ``recommended`` (a trial id) defaults to the best
    feasible trial.
    """
    objective = objective_of(frame)
    max_runtime_s = objective.max_runtime_s if max_runtime_s is None else max_runtime_s
    max_cost_usd = objective.max_cost_usd if max_cost_usd is None else max_cost_usd
    done = frame[(frame["status"] == "ok") & frame["runtime_s"].notna()]
    title = "Job cost against runtime of every tried configuration"
    if done.empty:
        return _message(path, title, "No trial completed, so there is nothing to place.")
    longest = max(float(done["runtime_s"].max()), max_runtime_s or 0.0)
    scale, unit = _hours_or_minutes(longest)
    figure = _figure(8.0, 5.0)
    ax = figure.add_subplot()
    _scatter_trials(ax, done, scale)
    _draw_front(ax, pareto_front(frame), scale)
    ax.set_xlim(
        0, longest / scale * 1.08
    )  # fixed first, so the deadline's shading ends at the edge
    _draw_limits(ax, max_runtime_s, max_cost_usd, scale)
    best = best_row_index(frame) if recommended is None else _index_of(frame, recommended)
    if best is not None:
        row = frame.loc[best]
        ax.scatter(
            [row["runtime_s"] / scale],
            [row["cost_usd"]],
            s=260,
            marker="*",
            color=_BEST,
            edgecolor="black",
            zorder=5,
            label="recommendation",
        )
    failed = int(((frame["status"] != "ok") & (frame["status"] != "running")).sum())
    if failed:  # they have no runtime to place; the legend still counts them
        ax.plot([], [], " ", label=f"{failed} failed trial(s), not shown")
    ax.set_xlabel(f"job runtime ({unit})")
    ax.set_ylabel("job cost (USD)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    return _save(figure, path)


def _index_of(frame: pd.DataFrame, trial_id: int) -> Any:
    matches = frame.index[frame["trial_id"] == trial_id]
    return matches[0] if len(matches) else None


def _scatter_trials(ax: Axes, done: pd.DataFrame, scale: float) -> None:
    for feasible, color, label in (
        (True, _FEASIBLE, "feasible"),
        (False, _INFEASIBLE, "infeasible"),
    ):
        part = done[done["feasible"] == feasible]
        if not part.empty:
            ax.scatter(
                part["runtime_s"] / scale,
                part["cost_usd"],
                color=color,
                alpha=0.8,
                label=f"{label} ({len(part)})",
            )


def _draw_front(ax: Axes, front: pd.DataFrame, scale: float) -> None:
    ax.step(
        front["runtime_s"] / scale,
        front["cost_usd"],
        where="post",
        color=_FRONT,
        lw=1.5,
        label="Pareto front",
    )
    ax.scatter(
        front["runtime_s"] / scale,
        front["cost_usd"],
        s=110,
        facecolor="none",
        edgecolor=_FRONT,
        lw=1.5,
    )
    for _, row in front.iterrows():
        label = f"{row['instance_type']} x{row['nodes']}" if pd.notna(row["instance_type"]) else ""
        ax.annotate(
            label,
            (row["runtime_s"] / scale, row["cost_usd"]),
            xytext=(6, 6),
            textcoords="offset points",
            fontsize="x-small",
            color="#333333",
        )


def _draw_limits(
    ax: Axes, max_runtime_s: float | None, max_cost: float | None, scale: float
) -> None:
    if max_runtime_s is not None:
        ax.axvline(max_runtime_s / scale, color=_FAILED, ls="--", label="deadline")
        ax.axvspan(max_runtime_s / scale, ax.get_xlim()[1], color=_FAILED, alpha=0.06)
    if max_cost is not None:
        ax.axhline(max_cost, color=_FAILED, ls=":", label="cost limit")


def plot_breakdown(result: Mapping[str, Any] | None, path: Path | str, title: str = "") -> Path:
    """Where a step's time goes: per-layer forward/backward and the step's parts.

    ``result`` is a workload's result JSON (``layers`` and ``breakdown_ms``). Without per-layer
    timings the plot says so (and still shows the step's parts when it has them).
    """
    title = title or "Time per training step of the recommendation"
    if result is None:
        return _message(path, title, "No recommendation: no trial was feasible.")
    layers = [layer for layer in result.get("layers") or [] if isinstance(layer, Mapping)]
    parts = {p: float(v) for p, v in (result.get("breakdown_ms") or {}).items() if v is not None}
    if not layers and not parts:
        return _message(path, title, "This result has no per-layer timings and no step breakdown.")
    figure = _figure(9.0, 6.5 if layers else 3.2)
    if layers and parts:
        layer_ax, parts_ax = figure.subplots(2, 1, height_ratios=[3, 1])
    else:
        layer_ax = parts_ax = figure.add_subplot()
    if layers:
        _layer_bars(layer_ax, layers)
    if parts:
        _part_bars(parts_ax, parts, note="" if layers else "(no per-layer timings in this result)")
    figure.suptitle(title)
    return _save(figure, path)


def _layer_bars(ax: Axes, layers: Sequence[Mapping[str, Any]]) -> None:
    named = [
        (
            str(lay.get("name", "?")),
            float(lay.get("forward_ms") or 0.0),
            float(lay.get("backward_ms") or 0.0),
        )
        for lay in layers
    ]
    named.sort(key=lambda t: t[1] + t[2], reverse=True)
    shown, rest = named[:_TOP_LAYERS][::-1], named[_TOP_LAYERS:]
    # Numeric positions: two layers with the same name still get a bar each.
    rows = range(len(shown))
    forward = [t[1] for t in shown]
    ax.barh(rows, forward, color=_FEASIBLE, label="forward")
    ax.barh(rows, [t[2] for t in shown], left=forward, color=_INFEASIBLE, label="backward")
    ax.set_yticks(rows, [t[0] for t in shown])
    ax.set_xlabel("ms per step")
    heading = f"The {len(shown)} slowest of {len(named)} layers"
    if rest:
        heading += f"; the other {len(rest)} take {sum(t[1] + t[2] for t in rest):.1f} ms"
    ax.set_title(heading, fontsize="medium")
    ax.tick_params(axis="y", labelsize="x-small")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="x", alpha=0.3)


def _part_bars(ax: Axes, parts: Mapping[str, float], note: str) -> None:
    order = [p for p in _PARTS if p in parts] + sorted(set(parts) - set(_PARTS))
    values = [parts[p] for p in order]
    ax.barh(order[::-1], values[::-1], color=_FRONT)
    total = sum(values)
    for y, value in enumerate(values[::-1]):
        share = f"{value:.1f} ms ({100 * value / total:.0f}%)" if total else f"{value:.1f} ms"
        ax.annotate(
            share,
            (value, y),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize="x-small",
        )
    ax.set_xlabel("ms per step")
    ax.set_title(f"Step breakdown, {total:.1f} ms in all {note}".strip(), fontsize="medium")
    ax.margins(x=0.15)
    ax.grid(axis="x", alpha=0.3)
