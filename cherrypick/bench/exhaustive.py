"""Dry runs judged against the truth: every candidate run on the simulator, the true optimum,
and the recommendation as the machines truly run it. ``cherrypick search --dry-run
--exhaustive`` and the dry-run benchmark use it; a real search cannot (it would run everything).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cherrypick.errors import InputError, ProvisioningError, WorkloadError
from cherrypick.optimizer.base import Objective
from cherrypick.providers.base import AnswersTrials, Candidate, LaunchRequest, Provider
from cherrypick.searching.result import Choice, SearchResult, format_choice
from cherrypick.searching.setup import SearchSpace, build_providers
from cherrypick.spec import SearchSpec
from cherrypick.trials import CandidateRecord
from cherrypick.units import job_cost
from cherrypick.workloads.base import Workload

__all__ = ["TruthCheck", "check_against_truth", "evaluate_all", "runtime_of", "true_choice"]


@dataclass(frozen=True)
class TruthCheck:
    """A dry run's recommendation against the true optimum, both as the machines truly run
    (the simulated cloud without one run's noise)."""

    objective: Objective
    optimum: Choice | None
    recommendation: Choice | None
    recommendation_true: Choice | None

    @property
    def gap(self) -> float | None:
        """How much worse the recommendation truly is than the optimum (0.03: 3%); as measured
        where the machines cannot truly run it (a failure only the truth shows)."""
        found = self.recommendation_true or self.recommendation
        if found is None or self.optimum is None:
            return None
        value = self.objective.value
        return (
            value(found.runtime_s, found.cost_usd)
            / value(self.optimum.runtime_s, self.optimum.cost_usd)
            - 1.0
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "optimum": None if self.optimum is None else self.optimum.to_dict(),
            "recommendation_true": (
                None if self.recommendation_true is None else self.recommendation_true.to_dict()
            ),
            "gap": self.gap,
        }

    def lines(self) -> list[str]:
        out = []
        if self.optimum is not None:
            out.append(f"true optimum: {format_choice(self.optimum)}")
        if self.recommendation_true is not None:
            truly = format_choice(self.recommendation_true)
            out.append(f"recommendation, as it truly runs: {truly}")
        if self.gap is not None:
            out.append(f"recommendation is {self.gap:.1%} from the optimum")
        return out


def check_against_truth(
    spec: SearchSpec,
    space: SearchSpace,
    workload: Workload,
    result: SearchResult,
    progress: Callable[[str], None] | None = None,
) -> TruthCheck:
    """Evaluate every candidate of ``space.catalog`` as it truly runs, and the recommendation."""
    truth = build_providers(space, True, spec, run_noise=False)
    catalog = space.catalog
    optimum = evaluate_all(
        catalog, workload, truth, result.objective, spec.trial_timeout_s, progress
    )
    found = true_choice(result.recommendation, catalog, workload, truth)
    return TruthCheck(result.objective, optimum, result.recommendation, found)


def evaluate_all(
    candidates: Sequence[Candidate],
    workload: Workload,
    providers: Mapping[str, Provider],
    objective: Objective,
    timeout_s: float,
    progress: Callable[[str], None] | None = None,
) -> Choice | None:
    """Run every candidate once and return the best, if any is feasible."""
    best: Choice | None = None
    step = max(1, len(candidates) // 10)
    for n, candidate in enumerate(candidates, start=1):
        runtime = runtime_of(candidate, workload, providers, timeout_s)
        if runtime is not None:
            cost = job_cost(candidate.price_per_hour, runtime)
            if objective.feasible(runtime, cost) and (
                best is None
                or objective.rank_key(runtime, cost)
                < objective.rank_key(best.runtime_s, best.cost_usd)
            ):
                best = Choice.from_record(CandidateRecord.of(candidate), runtime, cost)
        if progress is not None and (n % step == 0 or n == len(candidates)):
            progress(f"exhaustive: {n}/{len(candidates)} candidates evaluated")
    return best


def runtime_of(
    candidate: Candidate,
    workload: Workload,
    providers: Mapping[str, Provider],
    timeout_s: float,
) -> float | None:
    """One candidate's projected runtime as a trial would measure it; None if it fails.
    Only a provider that answers trials from a model (the simulator) can be swept."""
    provider = providers[candidate.offering.provider]
    if not isinstance(provider, AnswersTrials):
        raise InputError(f"provider '{provider.name}' runs real machines: it cannot be swept")
    placement = provider.placements(candidate)[0]
    request = LaunchRequest(candidate, placement, "cherrypick-exhaustive", {}, timeout_s)
    try:
        record = provider.run_instances(request)
    except ProvisioningError:
        return None
    try:
        result = provider.execute(candidate, (), workload, timeout_s).result
    except (ProvisioningError, WorkloadError):
        return None
    finally:
        provider.terminate_instances(placement.region, record.instance_ids)
    return result.runtime_s if result.feasible else None


def true_choice(
    choice: Choice | None,
    candidates: Sequence[Candidate],
    workload: Workload,
    truth: Mapping[str, Provider],
) -> Choice | None:
    """``choice`` (a recommendation, a sweep's best) as the machines truly run it."""
    if choice is None:
        return None
    for candidate in candidates:
        record = CandidateRecord.of(candidate)
        if _same_machines(record, choice):
            runtime = runtime_of(candidate, workload, truth, math.inf)
            if runtime is None:
                return None
            return Choice.from_record(record, runtime, job_cost(choice.price_per_hour, runtime))
    return None


def _same_machines(a: CandidateRecord, b: CandidateRecord) -> bool:
    return (a.provider, a.region, a.instance_type, a.nodes) == (
        b.provider,
        b.region,
        b.instance_type,
        b.nodes,
    )
