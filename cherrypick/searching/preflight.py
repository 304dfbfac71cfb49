"""Refusing a hopeless search before its first trial.

With the performance model as its prior, a search knows before it launches anything whether the
job can be done as asked: if no candidate fits the job in GPU memory (every prediction is a
failure), or if no candidate has even the stop rule's ``min_chance`` of meeting the deadline (or
the cost cap), every trial would be money spent to learn what the model already says. The search
stops instead, naming the closest candidate and what the model predicts for it; ``--force``
(``force=True``) searches anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cherrypick.errors import HopelessJobError
from cherrypick.optimizer import BayesianStrategy, Strategy
from cherrypick.providers.base import Candidate
from cherrypick.searching.setup import MIN_FIT
from cherrypick.trials import CandidateRecord
from cherrypick.units import format_duration

__all__ = ["refuse_hopeless"]

_FORCE = "--force (force=True in the API) searches anyway"


def refuse_hopeless(strategy: Strategy, candidates: Sequence[Candidate], min_chance: float) -> None:
    """Raise :class:`HopelessJobError` when the prior of ``strategy``'s problem says no
    candidate can run the job as asked; nothing without a prior (a blind search cannot know)."""
    problem = strategy.problem
    runtime = problem.prior_runtime_s
    if runtime is None:
        return
    if not np.isfinite(runtime).any():
        fit = problem.prior_fit if problem.prior_fit is not None else np.zeros(len(runtime))
        memory = np.array([c.offering.gpu_memory_gib for c in candidates], dtype=np.float64)
        best = int(np.lexsort(np.vstack([memory, fit]))[-1])  # likeliest; on a tie, most memory
        raise HopelessJobError(
            "by the performance model no candidate fits this job in GPU memory: the likeliest"
            f" to, {_name(candidates[best])}, has a {fit[best]:.1%} chance (a trial needs"
            f" {MIN_FIT:.0%}); use a smaller batch size or more GPU memory; {_FORCE}"
        )
    limit = problem.objective.limit
    if limit is None or not isinstance(strategy, BayesianStrategy):
        return
    chance = strategy.scores().chance
    if chance is None or float(np.nanmax(chance)) >= min_chance:
        return
    if problem.objective.kind == "cost":  # the limit is a deadline
        best = int(np.nanargmin(runtime))
        closest = (
            f"the fastest predicted is {format_duration(runtime[best])} on"
            f" {_name(candidates[best])}; the deadline (objective.max_runtime_s) is"
            f" {format_duration(limit)}"
        )
    else:
        cost = runtime * problem.price_per_hour / 3600.0
        best = int(np.nanargmin(cost))
        closest = (
            f"the cheapest predicted is ${cost[best]:,.2f} on {_name(candidates[best])}; the cost"
            f" cap (objective.max_cost_usd) is ${limit:,.2f}"
        )
    raise HopelessJobError(
        f"by the performance model no candidate has even a {min_chance:.0%} chance"
        f" (stop.min_chance) of meeting the limit: {closest}; relax it, or {_FORCE}"
    )


def _name(candidate: Candidate) -> str:
    return CandidateRecord.of(candidate).describe()
