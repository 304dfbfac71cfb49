"""What any stop rule can reach on a replay table: ``cherrypick bench stop-bound``.

A stop rule only chooses where each search ends along the trials its strategy proposes. This runs
every search to ``--budget`` trials without one and asks, per workload: with a mean search cost of
at most ``--cost-fraction`` of an exhaustive search (every configuration run once), in what share
of the searches can the optimum have been tried?

- ``fixed N``: every search stops after the same number of trials (the best such N);
- ``oracle``: a stop rule that knows the table. Each search stops right after it first tries the
  optimum, but not before ``--min-trials``; the searches that get there most cheaply are served
  first, and every other search stops at ``--min-trials``. No stop rule can do better on the same
  proposals. ``oracle, any N`` is the same without the minimum (a search may stop after one trial).

``-``: no fixed N stays within the limit; for the oracles, stopping every search at the minimum
already spends more than the limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from cherrypick.bench._harness import Progress, require
from cherrypick.bench.replay import SearchTrace, max_runtime_for, run_searches
from cherrypick.bench.tables import ReplayWorkload

__all__ = ["bound_rows", "first_optimum", "format_bound", "oracle_share", "stop_bound"]


def stop_bound(
    workloads: Sequence[ReplayWorkload],
    strategies: Sequence[str],
    seeds: int = 50,
    budget: int = 24,
    min_trials: int = 6,
    cost_fraction: float = 1 / 8,
    feasible_fraction: float | None = None,
    max_runtime_s: float | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> list[dict[str, object]]:
    """Run every search to ``budget`` trials, in parallel processes, and bound what a stop rule
    could reach on them: :func:`bound_rows`."""
    require(min_trials >= 1, "--min-trials", ">= 1", min_trials)
    require(cost_fraction > 0, "--cost-fraction", "> 0", cost_fraction)
    traces = run_searches(
        workloads,
        strategies,
        seeds,
        budget,
        feasible_fraction,
        max_runtime_s,
        jobs=jobs,
        progress=progress,
    )
    deadlines = {w.name: max_runtime_for(w, feasible_fraction, max_runtime_s) for w in workloads}
    return bound_rows(traces, workloads, strategies, cost_fraction, min_trials, deadlines)


def first_optimum(trace: SearchTrace) -> int:
    """The 0-based trial after which the search holds the optimum; -1 if it never does."""
    hit = np.flatnonzero(trace.normalised <= 1.0 + 1e-9)
    return int(hit[0]) if len(hit) else -1


def oracle_share(
    spent: NDArray[np.float64], found: NDArray[np.int64], limit: float, min_trials: int
) -> float | None:
    """The largest share of searches that can hold the optimum when each stops after at least
    ``min_trials`` trials and their mean search cost stays within ``limit``.

    ``spent``: searches x trials, the cumulative search cost; ``found``: per search, the 0-based
    trial at which it first tried the optimum, or -1. Stopping a search later only costs more, so
    a search is either stopped at ``min_trials`` or right when it finds the optimum; every search
    counts the same, so serving the cheapest extra spend first holds the most. None if stopping
    every search at ``min_trials`` is already over the limit.
    """
    searches, trials = spent.shape
    first = min(min_trials, trials) - 1
    base = spent[:, first]
    room = limit * searches - float(base.sum())
    if room < 0:
        return None
    held = int(np.sum((found >= 0) & (found <= first)))
    later = found > first
    extra = np.sort(spent[later, found[later]] - base[later])
    held += int(np.searchsorted(np.cumsum(extra), room, side="right"))
    return float(held / searches)


def bound_rows(
    traces: Sequence[SearchTrace],
    workloads: Sequence[ReplayWorkload],
    strategies: Sequence[str],
    cost_fraction: float,
    min_trials: int,
    deadlines: dict[str, float | None],
) -> list[dict[str, object]]:
    """Per workload and strategy: the cost limit, the state after ``min_trials``, the best fixed
    N within the limit, the two oracle shares, and the share that finds the optimum at all."""
    rows: list[dict[str, object]] = []
    for w in workloads:
        deadline = deadlines[w.name]
        exhaustive = float(w.cost_usd.sum()) / w.optimum_cost(deadline)
        limit = cost_fraction * exhaustive
        for s in strategies:
            pick = [t for t in traces if t.workload == w.name and t.strategy == s]
            spent = np.array([t.search_cost for t in pick])
            found = np.array([first_optimum(t) for t in pick], dtype=np.int64)
            n_min = min(min_trials, spent.shape[1])
            within = [
                (n + 1, float(np.mean((found >= 0) & (found <= n))))
                for n in range(spent.shape[1])
                if spent[:, n].mean() <= limit
            ]
            best_n = max(within, key=lambda r: r[1]) if within else None
            rows.append(
                {
                    "workload": w.name,
                    "strategy": s,
                    "limit": limit,
                    "cost_at_min": float(spent[:, n_min - 1].mean()),
                    "p_opt_at_min": float(np.mean((found >= 0) & (found < n_min))),
                    "fixed_n": best_n,
                    "oracle": oracle_share(spent, found, limit, min_trials),
                    "oracle_any_n": oracle_share(spent, found, limit, 1),
                    "found_by_budget": float(np.mean(found >= 0)),
                }
            )
    return rows


def format_bound(rows: list[dict[str, object]], min_trials: int, budget: int) -> str:
    """The rows as a printed table."""
    head = (
        f"{'workload':<32} {'strategy':<12} {'limit':>6} {'cost@' + str(min_trials):>8} "
        f"{'P@' + str(min_trials):>6} {'fixed N (N, P)':>15} {'oracle':>7} {'any N':>6} "
        f"{'by ' + str(budget):>6}"
    )
    lines = [head]
    for r in rows:
        fixed = r["fixed_n"]
        fixed_s = "-" if fixed is None else f"{fixed[0]}, {fixed[1]:.2f}"  # type: ignore[index]
        oracle = "-" if r["oracle"] is None else f"{r['oracle']:.2f}"
        any_n = "-" if r["oracle_any_n"] is None else f"{r['oracle_any_n']:.2f}"
        lines.append(
            f"{r['workload']:<32} {r['strategy']:<12} {r['limit']:>6.1f} "
            f"{r['cost_at_min']:>8.1f} {r['p_opt_at_min']:>6.2f} {fixed_s:>15} {oracle:>7} "
            f"{any_n:>6} {r['found_by_budget']:>6.2f}"
        )
    return "\n".join(lines)
