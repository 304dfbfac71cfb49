"""What any stop rule can reach on a replay table: ``python -m cherrypick.bench.stop_bound``.

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

import argparse
import sys
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from cherrypick.bench.replay import SearchTrace, max_runtime_for, run_searches
from cherrypick.bench.tables import ReplayWorkload, load_table
from cherrypick.errors import CherrypickError, InputError

__all__ = ["first_optimum", "oracle_share"]


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


def _format(rows: list[dict[str, object]], min_trials: int, budget: int) -> str:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cherrypick.bench.stop_bound", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--table", required=True)
    parser.add_argument("--workload", action="append")
    parser.add_argument("--strategy", action="append")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--budget", type=int, default=24)
    parser.add_argument("--min-trials", type=int, default=6)
    parser.add_argument("--cost-fraction", type=float, default=1 / 8)
    parser.add_argument("--feasible-fraction", type=float)
    args = parser.parse_args(argv)
    if args.min_trials < 1 or args.cost_fraction <= 0:
        raise InputError("--min-trials must be >= 1 and --cost-fraction > 0")
    strategies = args.strategy or ["cherrypick"]
    workloads = load_table(args.table).select(args.workload)
    traces = run_searches(
        workloads, strategies, args.seeds, args.budget, feasible_fraction=args.feasible_fraction
    )
    deadlines = {w.name: max_runtime_for(w, args.feasible_fraction, None) for w in workloads}
    rows = bound_rows(traces, workloads, strategies, args.cost_fraction, args.min_trials, deadlines)
    print(_format(rows, args.min_trials, args.budget))


if __name__ == "__main__":
    try:
        main()
    except CherrypickError as exc:
        print(f"python -m cherrypick.bench.stop_bound: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
