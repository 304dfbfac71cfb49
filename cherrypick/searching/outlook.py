"""What a search expects before its first trial, and the result it gives without one.

With the performance model as prior, the search knows what each trial will cost and what the job
would cost on the model's own pick. It prints that pick with its P(within 10%) and the spend it
expects; where no trial is expected to save more on the job than it costs (a job of a few
cents), it says so and offers the pick: ``--trials 0`` (``budget.max_trials: 0``) recommends it
untried instead of spending.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cherrypick.errors import InputError
from cherrypick.optimizer import BayesianStrategy, Strategy
from cherrypick.optimizer._spend import forecast_spend, surest_untried, trials_pay
from cherrypick.providers.base import Candidate
from cherrypick.searching.result import Choice, format_choice
from cherrypick.trials import CandidateRecord
from cherrypick.units import job_cost

__all__ = ["Outlook", "outlook", "predicted_choice"]


@dataclass(frozen=True)
class Outlook:
    """``pick``: the model's choice, untried (None without a prior); ``lines``: what to tell
    the user; ``skip``: why the search should run no trial (None: search)."""

    pick: Choice | None
    confidence: float | None
    lines: tuple[str, ...]
    skip: str | None


def outlook(
    strategy: Strategy, candidates: Sequence[Candidate], max_trials: int, within: float
) -> Outlook:
    """The search's outlook; ``InputError`` for ``max_trials`` 0 without a pick to offer."""
    found = surest_untried(strategy, within) if isinstance(strategy, BayesianStrategy) else None
    if found is None or not isinstance(strategy, BayesianStrategy):
        if max_trials == 0:
            raise InputError(
                "budget.max_trials 0 (--trials 0) recommends the performance model's pick, and"
                " this search has none: it needs prior: performance-model and a workload the"
                " model can predict, with a candidate likely to meet the limit"
            )
        return Outlook(None, None, (), None)
    index, confidence = found
    pick = predicted_choice(strategy, candidates, index)
    lines = [
        f"the performance model's pick: {format_choice(pick)}, P(within {within:.0%})"
        f" {confidence:.0%}"
    ]
    cost = strategy.problem.trial_cost_usd
    if max_trials == 0:
        return Outlook(pick, confidence, tuple(lines), "budget.max_trials is 0 (--trials 0)")
    if cost is not None and not trials_pay(strategy, index):
        no_pay = (
            f"no trial is expected to save more on the job than it costs (the cheapest trial"
            f" ${float(cost.min()):,.2f}, the job on the pick ${pick.cost_usd:,.2f})"
        )
        rule = strategy.stop_rule
        if rule is not None and rule.cost_aware:
            return Outlook(pick, confidence, tuple(lines), f"stop.cost_aware: {no_pay}")
        lines.append(f"{no_pay}: --trials 0 takes the pick without spending")
    forecast = forecast_spend(strategy, max_trials)
    if forecast is not None and cost is not None:
        lines.append(
            f"expected search spend: ${forecast.spend_usd:,.2f} over {forecast.trials} trials, if"
            f" the runs go as the model predicts (a trial costs ${float(cost.min()):,.2f}"
            f" to ${float(cost.max()):,.2f})"
        )
    return Outlook(pick, confidence, tuple(lines), None)


def predicted_choice(
    strategy: BayesianStrategy, candidates: Sequence[Candidate], index: int
) -> Choice:
    """The candidate with the runtime and cost the model predicts for its job."""
    cand, log_value, _, _ = strategy.outlook()
    at = int(np.flatnonzero(cand == index)[0])
    price = float(strategy.problem.price_per_hour[index])
    if strategy.problem.objective.kind == "cost":
        cost = math.exp(float(log_value[at]))
        runtime = cost / price * 3600.0
    else:
        runtime = math.exp(float(log_value[at]))
        cost = job_cost(price, runtime)
    return Choice.from_record(CandidateRecord.of(candidates[index]), runtime, cost)
