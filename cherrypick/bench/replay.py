"""Replay benchmark: run strategies on tables of measured runs and measure convergence.

For every workload, strategy and seed a search runs ``budget`` trials on the table. After each
trial N we record the normalised cost (cost of the best feasible configuration found so far /
cost of the cheapest feasible one; infinity while none is found) and the search cost (sum of the
trials' costs / the optimal job cost). With the stop rule we also record where the strategy
would have stopped. Rows with workload ``ALL`` pool every (workload, seed) sample; rows named
for a family (``cliff-one`` of ``cliff-one/0``, ``cliff-one/1``, ...) pool its workloads.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cherrypick.bench._harness import Progress, parallel_map, require
from cherrypick.bench.reliability import format_reliability, reliability_rows
from cherrypick.bench.tables import ReplayWorkload
from cherrypick.optimizer import (
    BayesianStrategy,
    Objective,
    Observation,
    Problem,
    StopRule,
    Strategy,
    make_strategy,
)
from cherrypick.optimizer import strategy_registry as _strategies

__all__ = [
    "BenchmarkResult",
    "SearchTrace",
    "benchmark",
    "format_result",
    "run_search",
    "run_searches",
]

ALL = "ALL"


@dataclass(frozen=True)
class SearchTrace:
    """One search: normalised cost and search cost after each trial, and where it stopped."""

    workload: str
    strategy: str
    seed: int
    normalised: NDArray[np.float64]
    search_cost: NDArray[np.float64]
    stop_at: int | None
    #: At the stop: the model's P(within the stop rule's share) and whether it truly was.
    confidence: float | None = None
    truly_within: bool | None = None
    #: Where CherryPick's EI rule would have stopped the same search (with a confidence rule).
    ei_stop_at: int | None = None


@dataclass(frozen=True)
class BenchmarkResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    stop: list[dict[str, Any]] = field(default_factory=list)
    reliability: list[dict[str, Any]] = field(default_factory=list)
    within: float = 0.10

    def as_dict(self) -> dict[str, list[dict[str, Any]]]:
        """Plain JSON data; a search that found nothing feasible has null (infinite) cost."""

        def clean(row: dict[str, Any]) -> dict[str, Any]:
            return {
                k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in row.items()
            }

        return {
            "rows": [clean(r) for r in self.rows],
            "stop": [clean(r) for r in self.stop],
            "reliability": [clean(r) for r in self.reliability],
        }


def max_runtime_for(
    workload: ReplayWorkload, feasible_fraction: float | None, max_runtime_s: float | None
) -> float | None:
    """The deadline: fixed, or the feasible_fraction quantile of the completed runtimes."""
    if feasible_fraction is None:
        require(max_runtime_s is None or max_runtime_s > 0, "--max-runtime", "> 0", max_runtime_s)
        return max_runtime_s
    require(0 < feasible_fraction <= 1, "--feasible-fraction", "in (0, 1]", feasible_fraction)
    return float(np.quantile(workload.runtime_s[workload.completed], feasible_fraction))


def run_search(
    workload: ReplayWorkload,
    strategy: str,
    seed: int,
    budget: int,
    max_runtime_s: float | None = None,
    stop_rule: StopRule | None = None,
) -> SearchTrace:
    """Replay one search of ``budget`` trials (or fewer if the table is smaller)."""
    objective = Objective("cost", max_runtime_s=max_runtime_s)
    problem = Problem(workload.features, workload.price_per_hour, objective, workload.feature_names)
    search = make_strategy(strategy, problem, seed, stop_rule)
    optimum = workload.optimum_cost(max_runtime_s)
    normalised, spent = [], []
    total = 0.0
    stop_at: int | None = None
    confidence: float | None = None
    truly: bool | None = None
    ei_rule = None
    if stop_rule is not None and stop_rule.confidence is not None:
        ei_rule = dataclasses.replace(stop_rule, confidence=None)
    ei_stop_at: int | None = None
    for n in range(1, min(budget, workload.size) + 1):
        i = search.ask(1)[0]
        ok = bool(workload.completed[i])
        search.tell(Observation(i, float(workload.runtime_s[i]), ok, float(workload.cost_usd[i])))
        total += float(workload.cost_usd[i])
        best = search.best()
        normalised.append(np.inf if best is None else best.cost_usd / optimum)
        spent.append(total / optimum)
        # The stop rule only reads the model that the next ask() would fit anyway, so one
        # search gives both the full curve and the point where the rule would have stopped.
        if stop_rule is not None and stop_at is None and search.should_stop():
            stop_at = n
        if stop_at == n:
            confidence, truly = _confidence_at_stop(search, workload, max_runtime_s, stop_rule)
        if ei_rule is not None and ei_stop_at is None and _stops(search, ei_rule):
            ei_stop_at = n
    if ei_rule is not None and ei_stop_at is None:
        ei_stop_at = len(normalised)
    if stop_rule is not None and stop_at is None:
        stop_at = len(normalised)
        confidence, truly = _confidence_at_stop(search, workload, max_runtime_s, stop_rule)
    return SearchTrace(
        workload.name,
        strategy,
        seed,
        np.array(normalised),
        np.array(spent),
        stop_at,
        confidence,
        truly,
        ei_stop_at,
    )


def _stops(search: Strategy, rule: StopRule) -> bool:
    """Whether ``rule`` would stop ``search`` now (the search keeps its own rule)."""
    own, search.stop_rule = search.stop_rule, rule
    try:
        return search.should_stop()
    finally:
        search.stop_rule = own


def _confidence_at_stop(
    search: Strategy,
    workload: ReplayWorkload,
    max_runtime_s: float | None,
    rule: StopRule | None,
) -> tuple[float | None, bool | None]:
    """The search's P(within) and whether its recommendation truly is within (the table's
    runs are the truth)."""
    if rule is None or not isinstance(search, BayesianStrategy):
        return None, None
    rec = search.recommend()
    if rec is None:
        return None, False
    optimum = workload.optimum_cost(max_runtime_s)
    truly = float(workload.cost_usd[rec.index]) <= (1.0 + rule.within) * optimum * (1 + 1e-9)
    return search.confidence(rule.within), truly


def _percentile(values: NDArray[np.float64], q: float) -> float:
    """numpy's linear percentile, where searches that found nothing feasible are infinite: a
    percentile that leans on one of them at all is infinite too (numpy would give NaN, and a
    large stand-in value would leak a finite but absurd number through the interpolation)."""
    ordered = np.sort(values)
    position = q / 100 * (len(ordered) - 1)
    below, above = math.floor(position), math.ceil(position)
    if not math.isfinite(ordered[above]):
        return math.inf
    low, high, weight = ordered[below], ordered[above], position - below
    # numpy's own interpolation, so that finite percentiles are numpy's to the last digit
    return float(
        low + (high - low) * weight if weight < 0.5 else high - (high - low) * (1 - weight)
    )


def _summary(values: NDArray[np.float64]) -> dict[str, float]:
    return {
        "median": _percentile(values, 50),
        "p90": _percentile(values, 90),
        "p95": _percentile(values, 95),
        "p_opt": float(np.mean(values <= 1.0 + 1e-9)),
        "p_within_10": float(np.mean(values <= 1.10 + 1e-9)),
    }


def _curve_rows(
    name: str, strategy: str, traces: list[SearchTrace], budget: int
) -> list[dict[str, Any]]:
    rows = []
    for n in range(1, budget + 1):
        # A search that ran out of candidates keeps its final state.
        norm = np.array([t.normalised[min(n, len(t.normalised)) - 1] for t in traces])
        cost = np.array([t.search_cost[min(n, len(t.search_cost)) - 1] for t in traces])
        rows.append(
            {
                "workload": name,
                "strategy": strategy,
                "n": n,
                **_summary(norm),
                "search_cost": float(cost.mean()),
            }
        )
    return rows


def _stop_row(
    name: str, strategy: str, traces: list[SearchTrace], rule: str, ei: bool = False
) -> dict[str, Any]:
    at = np.array([(t.ei_stop_at if ei else t.stop_at) or len(t.normalised) for t in traces])
    norm = np.array([t.normalised[k - 1] for t, k in zip(traces, at, strict=True)])
    cost = np.array([t.search_cost[k - 1] for t, k in zip(traces, at, strict=True)])
    summary = _summary(norm)
    return {
        "workload": name,
        "strategy": strategy,
        "rule": rule,
        "mean_trials": float(at.mean()),
        "median": summary["median"],
        "p90": summary["p90"],
        "p_opt": summary["p_opt"],
        "p_within_10": summary["p_within_10"],
        "search_cost": float(cost.mean()),
        "infeasible": int(np.sum(~np.isfinite(norm))),
    }


def _run_task(
    args: tuple[ReplayWorkload, str, int, int, float | None, StopRule | None],
) -> SearchTrace:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return run_search(*args)


def benchmark(
    workloads: Sequence[ReplayWorkload],
    strategies: Sequence[str],
    seeds: int = 50,
    budget: int = 30,
    feasible_fraction: float | None = None,
    max_runtime_s: float | None = None,
    stop_rule: StopRule | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> BenchmarkResult:
    """Run every (workload, strategy, seed) search, in parallel processes, and summarise."""
    traces = run_searches(
        workloads,
        strategies,
        seeds,
        budget,
        feasible_fraction,
        max_runtime_s,
        stop_rule,
        jobs,
        progress,
    )
    result = _summarise(traces, strategies, [w.name for w in workloads], budget, stop_rule)
    if stop_rule is not None:
        result = replace(result, within=stop_rule.within)
        for s in strategies:
            chosen = [t for t in traces if t.strategy == s and t.confidence is not None]
            if chosen:
                reported = [t.confidence for t in chosen]
                truly = [bool(t.truly_within) for t in chosen]
                result.reliability.extend(reliability_rows(reported, truly, s))
    return result


def run_searches(
    workloads: Sequence[ReplayWorkload],
    strategies: Sequence[str],
    seeds: int = 50,
    budget: int = 30,
    feasible_fraction: float | None = None,
    max_runtime_s: float | None = None,
    stop_rule: StopRule | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> list[SearchTrace]:
    """Every (workload, strategy, seed) search's trace, run in parallel processes."""
    _check(strategies, seeds, budget, stop_rule)
    tasks = []
    for w in workloads:
        deadline = max_runtime_for(w, feasible_fraction, max_runtime_s)
        w.optimum_cost(deadline)
        tasks += [
            (w, s, seed, budget, deadline, stop_rule) for s in strategies for seed in range(seeds)
        ]
    return parallel_map(_run_task, tasks, jobs, progress)


def _check(strategies: Sequence[str], seeds: int, budget: int, stop_rule: StopRule | None) -> None:
    for name in strategies:
        _strategies.get(name)
    require(seeds >= 1, "--seeds", ">= 1", seeds)
    require(budget >= 1, "--budget", ">= 1", budget)
    if stop_rule is not None:
        require(stop_rule.ei_fraction >= 0, "--ei-fraction", ">= 0", stop_rule.ei_fraction)
        require(stop_rule.min_trials >= 1, "--min-trials", ">= 1", stop_rule.min_trials)


def _summarise(
    traces: list[SearchTrace],
    strategies: Sequence[str],
    names: list[str],
    budget: int,
    stop_rule: StopRule | None = None,
) -> BenchmarkResult:
    curves = traces
    stops = [t for t in traces if t.stop_at is not None]
    result = BenchmarkResult()
    for name in _groups(names):
        for s in strategies:
            pick = [t for t in curves if t.strategy == s and _in_group(t.workload, name)]
            result.rows.extend(_curve_rows(name, s, pick, budget))
            chosen = [t for t in stops if t.strategy == s and _in_group(t.workload, name)]
            if chosen and stop_rule is not None:
                result.stop.append(_stop_row(name, s, chosen, _rule_name(stop_rule)))
                if stop_rule.confidence is not None:
                    ei_rule = dataclasses.replace(stop_rule, confidence=None)
                    result.stop.append(_stop_row(name, s, chosen, _rule_name(ei_rule), ei=True))
    return result


def _family(workload: str) -> str:
    """A workload's family: the part of its name before a ``/`` (``cliff-one/2``)."""
    return workload.split("/")[0]


def _groups(names: list[str]) -> list[str]:
    """The workloads, then each family of several, then ALL: every group gets its own rows."""
    families = [f for f in dict.fromkeys(map(_family, names)) if f not in names]
    several = [f for f in families if sum(_family(n) == f for n in names) > 1]
    return [*names, *several, ALL] if len(names) > 1 else names


def _in_group(workload: str, group: str) -> bool:
    return group in (ALL, workload, _family(workload))


def _rule_name(rule: StopRule) -> str:
    if rule.confidence is not None:
        return f"P(within {rule.within:.0%})>={rule.confidence:.2f}"
    return f"EI<{rule.ei_fraction:.0%}"


def format_result(result: BenchmarkResult, print_n: set[int] | None = None) -> str:
    """The result as printed tables: convergence rows, then the stop-rule rows."""
    import pandas as pd

    rows = pd.DataFrame(result.rows)
    if print_n:
        rows = rows[rows["n"].isin(print_n)]
    with pd.option_context("display.width", 200, "display.max_rows", None):
        text = "normalised cost after N trials (1.0 = the optimum)\n"
        text += rows.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        if result.stop:
            text += "\n\nwith the stop rule\n"
            stop = pd.DataFrame(result.stop)
            text += stop.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        if result.reliability:
            text += "\n\n" + format_reliability(result.reliability, result.within)
    versus = format_versus(result, print_n)
    return str(text) + ("\n\n" + versus if versus else "")


def format_versus(
    result: BenchmarkResult,
    print_n: set[int] | None = None,
    strategy: str = "cherrypick",
    reference: str = "gp-ei",
) -> str:
    """``strategy``'s median, p90 and p95 over ``reference``'s, per group and N, where both
    ran; "" otherwise. Ratios above 1 are where the reference does better."""
    import pandas as pd

    rows = pd.DataFrame(result.rows)
    if rows.empty or not {strategy, reference} <= set(rows["strategy"]):
        return ""
    if print_n:
        rows = rows[rows["n"].isin(print_n)]
    keys = ["workload", "n"]
    ours = rows[rows["strategy"] == strategy].set_index(keys)
    theirs = rows[rows["strategy"] == reference].set_index(keys)
    ratio = (ours[["median", "p90", "p95"]] / theirs[["median", "p90", "p95"]]).reset_index()
    with pd.option_context("display.width", 200, "display.max_rows", None):
        table = ratio.to_string(index=False, float_format=lambda v: f"{v:.3f}")
    return f"{strategy} / {reference} (above 1: {reference} is better)\n{table}"
