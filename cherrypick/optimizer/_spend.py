"""Before the first trial: the prior's own pick, whether any trial can pay for itself, and what
the search is expected to spend.

A trial is worth running when what it may save on the job exceeds what it costs. Before any
trial, the job would run on the model's pick (of the few candidates the performance model
believes cheapest among those at least 90% likely to meet the limit, the one it is surest is
within a fraction of the best); a trial of another candidate saves its expected improvement on
that pick's expected cost. Where no candidate's saving exceeds its
trial's cost (a job of a few cents), searching cannot pay for itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cherrypick.optimizer._acquisition import expected_improvement
from cherrypick.optimizer.base import Observation
from cherrypick.optimizer.bo import BayesianStrategy

__all__ = ["Forecast", "forecast_spend", "surest_untried", "trials_pay"]

#: An untried recommendation must meet the limit at least this likely, by the model: at even
#: odds, a quarter of the dry-run benchmark's AlexNet picks (30% case) truly ran late.
_LIKELY = 0.9


def trials_pay(strategy: BayesianStrategy, pick: int | None) -> bool:
    """Whether some trial is expected to save more on the job than it costs, before any trial,
    where the job would otherwise run on ``pick`` (``surest_untried``'s): True where trial costs
    are unknown or there is no pick to save on."""
    cost = strategy.problem.trial_cost_usd
    if pick is None or cost is None:
        return True
    cand, log_value, latent, p_ok = strategy.outlook()
    at = int(np.flatnonzero(cand == pick)[0])
    expected = math.exp(log_value[at] + latent[at] ** 2 / 2)
    others = cand != pick
    saving = expected_improvement(log_value[others], latent[others], expected) * p_ok[others]
    return bool(np.any(saving > cost[cand[others]]))


@dataclass(frozen=True)
class Forecast:
    """A search as the model expects it to go if every run measures what it predicts."""

    trials: int
    spend_usd: float


def forecast_spend(strategy: BayesianStrategy, max_trials: int) -> Forecast | None:
    """Run the search on the model's own predictions (a copy of ``strategy``, untouched) and
    add up the trials' predicted costs; None where trial costs are unknown."""
    cost = strategy.problem.trial_cost_usd
    if cost is None:
        return None
    copy = BayesianStrategy(strategy.problem, strategy.seed, strategy.stop_rule, strategy.config)
    spend, trials = 0.0, 0
    while trials < max_trials and not copy.should_stop():
        scores = copy.scores()
        (index,) = copy.ask(1)
        forecast = scores.forecast(index)
        log_cost = forecast[0] if forecast is not None else float(scores.log_cost[0])
        price_per_s = float(strategy.problem.price_per_hour[index]) / 3600.0
        copy.tell(Observation(index, math.exp(log_cost) / price_per_s))
        spend += float(cost[index])
        trials += 1
    return Forecast(trials, spend)


def surest_untried(
    strategy: BayesianStrategy, within: float, shortlist: int = 5
) -> tuple[int, float] | None:
    """Among the ``shortlist`` untried candidates the model believes best (of those at least
    90% likely to meet the limit), the one with the highest P(within) and that probability; None
    without a prior or with no such candidate."""
    if strategy.prior is None or not len(strategy.untried()):
        return None
    cand, log_value, _, p_ok = strategy.outlook()
    likely = p_ok >= _LIKELY
    if not likely.any():
        return None
    order = cand[likely][np.argsort(log_value[likely])][:shortlist]
    best: tuple[int, float] | None = None
    for index in order:
        chance = strategy.confidence(within, index=int(index))
        if chance is not None and (best is None or chance > best[1]):
            best = (int(index), chance)
    return best
