"""Baselines behind the same ask/tell interface, so benchmarks compare on equal terms."""

from __future__ import annotations

import numpy as np

from cherrypick.optimizer.base import Strategy

__all__ = ["CheapestFirst", "Exhaustive", "RandomSearch"]


class RandomSearch(Strategy):
    """Uniformly random untried candidates."""

    name = "random"

    def _propose(self, n: int) -> list[int]:
        return [int(i) for i in self.rng.choice(self.untried(), size=n, replace=False)]


class Exhaustive(Strategy):
    """Every candidate, in the order given: the reference that always finds the optimum."""

    name = "exhaustive"

    def _propose(self, n: int) -> list[int]:
        return [int(i) for i in self.untried()[:n]]


class CheapestFirst(Strategy):
    """Lowest price per hour first: what picking 'the cheapest VM' by hand does."""

    name = "cheapest"

    def _propose(self, n: int) -> list[int]:
        untried = self.untried()
        order = np.argsort(self.problem.price_per_hour[untried], kind="stable")
        return [int(i) for i in untried[order[:n]]]
