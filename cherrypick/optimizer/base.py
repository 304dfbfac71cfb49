"""The ask/tell interface every search strategy shares.

A strategy sees a finite set of candidates as rows of a numeric feature matrix and a known price
per hour for each row. It knows nothing of clouds, SSH or torch: the caller maps row indices to
configurations and reports what each trial measured.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from cherrypick.errors import InputError
from cherrypick.units import job_cost

__all__ = ["Objective", "Observation", "Problem", "Recommendation", "StopRule", "Strategy"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Objective:
    """``cost`` (job dollars) under an optional runtime limit, or ``runtime`` under a cost limit."""

    kind: str = "cost"
    max_runtime_s: float | None = None
    max_cost_usd: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("cost", "runtime"):
            raise InputError(f"objective must be 'cost' or 'runtime', not '{self.kind}'")
        for name in ("max_runtime_s", "max_cost_usd"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"objective {name} must be positive, got {value}")

    def value(self, runtime_s: float, cost_usd: float) -> float:
        return cost_usd if self.kind == "cost" else runtime_s

    def rank_key(self, runtime_s: float, cost_usd: float) -> tuple[float, float]:
        """Smaller is better: the objective's value, ties broken by the other quantity."""
        other = runtime_s if self.kind == "cost" else cost_usd
        return self.value(runtime_s, cost_usd), other

    @property
    def limit(self) -> float | None:
        """The limit on what is not the objective: runtime for a cost objective, and vice versa."""
        return self.max_runtime_s if self.kind == "cost" else self.max_cost_usd

    def feasible(self, runtime_s: float, cost_usd: float) -> bool:
        if self.max_runtime_s is not None and runtime_s > self.max_runtime_s:
            return False
        return self.max_cost_usd is None or cost_usd <= self.max_cost_usd


@dataclass(frozen=True)
class Observation:
    """What one trial of candidate ``index`` measured, as ``tell()`` takes it: the optimiser's
    input, with no status beyond ``ok`` (every failure is alike to the model)."""

    index: int
    runtime_s: float | None
    ok: bool = True
    cost_usd: float | None = None

    def __post_init__(self) -> None:
        if self.ok and (self.runtime_s is None or not self.runtime_s > 0):
            raise InputError(f"a completed trial needs a positive runtime, got {self.runtime_s}")


@dataclass(frozen=True)
class Recommendation:
    """A completed feasible trial as a strategy ranks it: by candidate index, since the
    optimiser knows rows, not machines (the search maps it to a configuration)."""

    index: int
    runtime_s: float
    cost_usd: float


@dataclass(frozen=True)
class StopRule:
    """CherryPick's rule: stop once the best acquisition value (an expected saving in the
    objective's units) is below ``ei_fraction`` of the best feasible value, after at least
    ``min_trials`` trials. With ``confidence`` set, that rule gives way to ours: stop once the
    model's P(within ``within``) of the recommendation (``BayesianStrategy.confidence``) reaches
    ``confidence``. Both add: under a constraint that no trial has met yet, stop once no untried
    candidate has even a ``min_chance`` probability of meeting it. ``cost_aware``: where the
    problem knows what each trial costs, weigh it against what the trial may save, and stop once
    none would save more than it costs (``BayesianStrategy``)."""

    ei_fraction: float = 0.10
    min_trials: int = 6
    min_chance: float = 0.01
    within: float = 0.10
    confidence: float | None = None
    cost_aware: bool = False


@dataclass(frozen=True)
class Problem:
    """The candidates as the optimiser sees them: features (rows) and known prices ($/h).

    ``prior_runtime_s``, optional: a prediction of each candidate's runtime made before any trial
    (a performance model's), NaN where the prediction is that the run fails. Strategies that can
    use it model how far the measurements depart from it.

    ``groups``, optional: a label per candidate (e.g. its GPU model); candidates with the same
    label are expected to depart from the prior by a common factor, which one trial reveals.

    ``trial_cost_usd``, optional: what a trial of each candidate is expected to cost (boot,
    set-up and the short run at its price). A strategy that knows it weighs what a trial may save
    on the job against what it costs.

    ``prior_fit``, optional: the probability, made before any trial, that each candidate's run
    completes (e.g. that the job fits in its GPU memory), for candidates near a limit that are
    worth a trial all the same. Candidates with one label share it: once a run of the label has
    completed, its candidates are taken to complete.
    """

    features: FloatArray
    price_per_hour: FloatArray
    objective: Objective = field(default_factory=Objective)
    feature_names: tuple[str, ...] = ()
    prior_runtime_s: FloatArray | None = None
    groups: NDArray[np.int64] | None = None
    prior_fit: FloatArray | None = None
    trial_cost_usd: FloatArray | None = None

    def __post_init__(self) -> None:
        n = len(self.price_per_hour)
        if self.features.ndim != 2 or self.features.shape[0] != n or n == 0:
            raise InputError(
                f"features must be a (candidates x features) matrix matching {n} prices, "
                f"got shape {self.features.shape}"
            )
        if not np.all(np.isfinite(self.features)) or not np.all(self.price_per_hour > 0):
            raise InputError("features must be finite and prices positive")
        prior = self.prior_runtime_s
        usable = np.isnan(prior) | (np.isfinite(prior) & (prior > 0)) if prior is not None else None
        if prior is not None and (prior.shape != (n,) or not np.all(usable)):
            raise InputError(
                f"prior_runtime_s must hold {n} positive runtimes (NaN for a predicted failure)"
            )
        if self.groups is not None and np.shape(self.groups) != (n,):
            raise InputError(f"groups must hold one label per candidate ({n})")
        fit = self.prior_fit
        if fit is not None and (np.shape(fit) != (n,) or not np.all((fit >= 0) & (fit <= 1))):
            raise InputError(f"prior_fit must hold {n} probabilities in [0, 1]")
        cost = self.trial_cost_usd
        if cost is not None and (
            np.shape(cost) != (n,) or not np.all(np.isfinite(cost) & (cost >= 0))
        ):
            raise InputError(f"trial_cost_usd must hold {n} non-negative costs")

    @property
    def size(self) -> int:
        return len(self.price_per_hour)

    def cost(self, index: int, runtime_s: float) -> float:
        return job_cost(float(self.price_per_hour[index]), runtime_s)


class Strategy(ABC):
    """Ask for candidates, tell what they measured. Subclasses choose what to ask."""

    name = ""

    def __init__(self, problem: Problem, seed: int = 0, stop_rule: StopRule | None = None) -> None:
        self.problem = problem
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.stop_rule = stop_rule  # None: never stop before the candidates run out
        self.observations: dict[int, Observation] = {}
        self.pending: set[int] = set()
        #: Candidates never to propose again that taught nothing (no machines could be had).
        self.excluded: set[int] = set()

    @abstractmethod
    def _propose(self, n: int) -> list[int]:
        """Pick up to ``n`` distinct indices among ``self.untried()``."""

    def ask(self, n: int = 1) -> list[int]:
        if n < 1:
            raise InputError(f"ask(n) needs n >= 1, got {n}")
        chosen = self._propose(min(n, len(self.untried())))
        self.pending.update(chosen)
        return chosen

    def tell(self, observation: Observation) -> None:
        i = observation.index
        if not 0 <= i < self.problem.size:
            raise InputError(f"candidate index {i} is outside 0..{self.problem.size - 1}")
        if observation.ok and observation.cost_usd is None:
            assert observation.runtime_s is not None
            cost = self.problem.cost(i, observation.runtime_s)
            observation = Observation(i, observation.runtime_s, True, cost)
        self.pending.discard(i)
        self.observations[i] = observation

    def exclude(self, index: int) -> None:
        """Never propose ``index`` again, without an observation: capacity is not a
        measurement, so the models learn nothing from it."""
        self.pending.discard(index)
        self.excluded.add(index)

    def withdraw(self, index: int) -> None:
        """Forget that ``index`` was asked for (the search decided not to run it)."""
        self.pending.discard(index)

    def untried(self) -> NDArray[np.int64]:
        mask = np.ones(self.problem.size, dtype=bool)
        mask[list(self.observations)] = False
        mask[list(self.pending)] = False
        mask[list(self.excluded)] = False
        return np.flatnonzero(mask)

    def feasible(self) -> list[Recommendation]:
        """The completed trials that meet the objective's limit, in the order they were told."""
        objective = self.problem.objective
        return [
            Recommendation(o.index, o.runtime_s, o.cost_usd)
            for o in self.observations.values()
            if o.ok
            and o.runtime_s is not None
            and o.cost_usd is not None
            and objective.feasible(o.runtime_s, o.cost_usd)
        ]

    def best(self) -> Recommendation | None:
        """The best feasible completed trial so far, or None."""
        objective = self.problem.objective
        return min(
            self.feasible(), key=lambda r: objective.rank_key(r.runtime_s, r.cost_usd), default=None
        )

    def recommend(self) -> Recommendation | None:
        """The configuration to run the job on: a feasible completed trial. By default the best
        measured one; a strategy with a model of measurement noise may prefer another."""
        return self.best()

    def should_stop(self) -> bool:
        """True when nothing is left to try (model-based strategies also apply the stop rule)."""
        return len(self.untried()) == 0 and not self.pending
