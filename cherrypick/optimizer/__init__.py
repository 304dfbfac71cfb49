"""Search strategies: ask/tell objects over a finite candidate set. No cloud, SSH or torch here.

Registered names: ``cherrypick`` (our default, see ``bo``), ``gp-ei`` (plain CherryPick-style
GP + EI on log cost with random initial points, kept as a reference), ``random``, ``exhaustive``
and ``cheapest``.
"""

from __future__ import annotations

from typing import Any

from cherrypick.optimizer.base import (
    Objective,
    Observation,
    Problem,
    Recommendation,
    StopRule,
    Strategy,
)
from cherrypick.optimizer.baselines import CheapestFirst, Exhaustive, RandomSearch
from cherrypick.optimizer.bo import BayesianStrategy, BOConfig
from cherrypick.registry import Registry

__all__ = [
    "BOConfig",
    "BayesianStrategy",
    "CheapestFirst",
    "Exhaustive",
    "Objective",
    "Observation",
    "Problem",
    "RandomSearch",
    "Recommendation",
    "StopRule",
    "Strategy",
    "make_strategy",
    "strategy_registry",
]

strategy_registry: Registry[Strategy] = Registry("strategy", "cherrypick.strategies")


def _bo(config: BOConfig) -> Any:
    def factory(problem: Problem, seed: int = 0, stop_rule: StopRule | None = None) -> Strategy:
        return BayesianStrategy(problem, seed, stop_rule, config)

    return factory


strategy_registry.register("cherrypick", _bo(BOConfig()))
strategy_registry.register(
    "gp-ei",
    _bo(
        BOConfig(
            targets=("cost",),
            linear_trend=False,
            ard=True,
            initial="random",
            feasible_improvement=False,
        )
    ),
)
strategy_registry.register("random", RandomSearch)
strategy_registry.register("exhaustive", Exhaustive)
strategy_registry.register("cheapest", CheapestFirst)


def make_strategy(
    name: str, problem: Problem, seed: int = 0, stop_rule: StopRule | None = None
) -> Strategy:
    """The strategy registered as ``name``; unknown names list the known ones."""
    return strategy_registry.create(name, problem, seed, stop_rule)
