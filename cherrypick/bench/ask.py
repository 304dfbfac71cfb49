"""Time one ask() over many candidates: ``cherrypick bench ask``.

Builds a synthetic cluster-like problem (runtime falls with resources, price rises with them),
tells each strategy all but the last of ``observations`` trials, then ``repeat`` times: copies
that state, tells the last trial and times the ask(1) that follows, as a search does each step.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cherrypick.bench._harness import require
from cherrypick.optimizer import Observation, Problem, make_strategy
from cherrypick.optimizer import strategy_registry as _strategies

__all__ = ["AskTiming", "time_ask"]


@dataclass(frozen=True)
class AskTiming:
    """How long ask(1) took (milliseconds, one entry per call) with ``observations`` told."""

    strategy: str
    candidates: int
    features: int
    observations: int
    times_ms: tuple[float, ...]

    def summary(self) -> str:
        return (
            f"ask(1) over {self.candidates} candidates x {self.features} features with "
            f"{self.observations} observations ({self.strategy}): "
            f"median {statistics.median(self.times_ms):.1f} ms, "
            f"max {max(self.times_ms):.1f} ms over {len(self.times_ms)} calls"
        )


def _problem(candidates: int, features: int, seed: int) -> tuple[Problem, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 5.0, size=(candidates, features))
    resources = x[:, : max(1, features // 2)].sum(axis=1)
    runtime = 300.0 + 36000.0 / np.exp2(resources / 2) * rng.lognormal(0.0, 0.05, candidates)
    price = 0.2 * np.exp2(resources / 2.5)
    return Problem(x, price), runtime


def time_ask(
    strategies: Sequence[str],
    candidates: int = 1000,
    features: int = 12,
    observations: int = 30,
    repeat: int = 20,
) -> list[AskTiming]:
    """Time ``repeat`` ask(1) calls of each strategy on the same synthetic problem."""
    for name in strategies:
        _strategies.get(name)
    require(candidates >= 2, "--candidates", ">= 2", candidates)
    require(features >= 1, "--features", ">= 1", features)
    # One candidate must stay untried for the timed ask() to have something to choose.
    bounds = f"between 1 and --candidates - 1 ({candidates - 1})"
    require(1 <= observations < candidates, "--observations", bounds, observations)
    require(repeat >= 1, "--repeat", ">= 1", repeat)
    problem, runtime = _problem(candidates, features, seed=0)
    return [_time(s, problem, runtime, observations, repeat) for s in strategies]


def _time(
    strategy: str, problem: Problem, runtime: np.ndarray, observations: int, repeat: int
) -> AskTiming:
    search = make_strategy(strategy, problem, seed=0)
    for _ in range(observations - 1):
        (i,) = search.ask(1)
        search.tell(Observation(i, float(runtime[i])))
    (last,) = search.ask(1)
    times = []
    for _ in range(repeat):
        fresh = copy.deepcopy(search)
        fresh.tell(Observation(last, float(runtime[last])))
        start = time.perf_counter()
        fresh.ask(1)
        times.append((time.perf_counter() - start) * 1000)
    features = problem.features.shape[1]
    return AskTiming(strategy, problem.size, features, observations, tuple(times))
