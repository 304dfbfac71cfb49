"""What a search needs before its first trial: candidates, the problem, providers, a workload;
and the exhaustive evaluation that dry runs compare against. Private to ``cherrypick.searching``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cherrypick.catalog import CatalogFilter, candidate_features, load_catalog, load_gpus
from cherrypick.catalog.gpus import GpuSpec
from cherrypick.errors import InputError, ProvisioningError, ValidationError, WorkloadError
from cherrypick.optimizer.base import Objective, Problem
from cherrypick.providers.base import Candidate, Provider, provider_registry
from cherrypick.searching.result import Choice
from cherrypick.searching.trial import candidate_record
from cherrypick.spec import SearchSpec
from cherrypick.workloads.base import Workload, create_workload

__all__ = [
    "build_candidates",
    "build_problem",
    "build_providers",
    "build_workload",
    "cheapest_per_hardware",
    "evaluate_all",
    "objective_of",
    "performance_prior",
    "runtime_of",
    "search_tag",
    "true_choice",
]


def objective_of(spec: SearchSpec) -> Objective:
    o = spec.objective
    return Objective(o.kind, o.max_runtime_s, o.max_cost_usd)


def build_candidates(spec: SearchSpec) -> list[Candidate]:
    """The filtered catalog times node counts, in catalog order (a resume rebuilds it)."""
    f = spec.filters
    gpus = load_gpus()
    offerings = load_catalog(f.providers, gpus=gpus)
    chosen = CatalogFilter(
        f.providers, f.regions, f.gpus, f.min_gpu_memory_gib, f.max_nodes, f.max_price_per_hour
    ).candidates(offerings, gpus)
    if not chosen:
        raise ValidationError(
            "search file", "no catalog offering passes the filters", field="filters"
        )
    return chosen


def cheapest_per_hardware(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Drop candidates that the same hardware beats for less elsewhere.

    Offerings with identical features (the same machine in several regions) run a job equally
    fast, so only the cheapest is ever the better choice, under either objective; the search
    space shrinks (about 1000 to 430 for the bundled catalog) and the model is not distracted.
    """
    _, matrix = candidate_features(candidates, load_gpus())
    cheapest: dict[bytes, int] = {}
    for i, candidate in enumerate(candidates):
        row = matrix[i].tobytes()
        if (
            row not in cheapest
            or candidate.price_per_hour < candidates[cheapest[row]].price_per_hour
        ):
            cheapest[row] = i
    return [candidates[i] for i in sorted(cheapest.values())]


def build_problem(
    candidates: Sequence[Candidate], objective: Objective, workload: Workload | None = None
) -> Problem:
    """The optimiser's view; with ``workload``, the performance model's runtimes as its prior."""
    gpus = load_gpus()
    names, matrix = candidate_features(candidates, gpus)
    prices = np.array([c.price_per_hour for c in candidates], dtype=np.float64)
    prior = None if workload is None else performance_prior(candidates, workload, gpus)
    _, groups = np.unique([c.offering.gpu for c in candidates], return_inverse=True)
    return Problem(matrix, prices, objective, tuple(names), prior, groups.astype(np.int64))


def performance_prior(
    candidates: Sequence[Candidate], workload: Workload, gpus: Mapping[str, GpuSpec]
) -> NDArray[np.float64] | None:
    """Each candidate's runtime as the performance model predicts it (NaN: predicted to fail),
    or None if the workload can be neither profiled nor estimated."""
    from cherrypick.perfmodel import PerformanceModel

    model = PerformanceModel(gpus)
    try:
        runtimes = [model.runtime(candidate, workload) for candidate in candidates]
    except WorkloadError:
        return None  # a workload that can be neither profiled nor estimated has no prior
    return np.array([math.nan if r is None else r for r in runtimes], dtype=np.float64)


def build_workload(spec: SearchSpec) -> Workload:
    return create_workload(spec.workload.name, spec.workload.params)


def build_providers(
    candidates: Sequence[Candidate], dry_run: bool, spec: SearchSpec, run_noise: bool = True
) -> dict[str, Provider]:
    """One provider per cloud the candidates use; a dry run puts the simulator behind them all.

    ``run_noise=False`` (dry runs): the simulated machines as they truly are, without the noise
    of any one run; the exhaustive sweep measures the true optimum with it.
    """
    clouds = sorted({c.offering.provider for c in candidates})
    if dry_run:
        sim = spec.simulator
        simulator = provider_registry.create(
            "simulated",
            spec.seed,
            gpus=load_gpus(),
            noise=sim.noise if run_noise else 0.0,
            model_error=sim.model_error,
            capacity_error_rate=sim.capacity_error_rate,
        )
        return {cloud: simulator for cloud in clouds}
    known = set(provider_registry.names())
    missing = [c for c in clouds if c not in known]
    if missing:
        raise InputError(
            f"no provider can launch machines on {', '.join(missing)} in this version;"
            " run with --dry-run, or restrict filters.providers"
        )
    return {cloud: provider_registry.create(cloud) for cloud in clouds}


def search_tag(identity: Mapping[str, Any], seed: int) -> str:
    """The tag on every machine of one search: the same again when the search resumes."""
    digest = hashlib.sha256(json.dumps([identity, seed], sort_keys=True).encode()).hexdigest()
    return f"cherrypick-{digest[:12]}"


def evaluate_all(
    candidates: Sequence[Candidate],
    workload: Workload,
    providers: Mapping[str, Provider],
    objective: Objective,
    timeout_s: float,
    progress: Callable[[str], None] | None = None,
) -> Choice | None:
    """Run every candidate once (dry runs only) and return the true optimum, if any is feasible."""
    best: Choice | None = None
    step = max(1, len(candidates) // 10)
    for n, candidate in enumerate(candidates, start=1):
        runtime = runtime_of(candidate, workload, providers, timeout_s)
        if runtime is not None:
            cost = candidate.price_per_hour * runtime / 3600.0
            if objective.feasible(runtime, cost) and (
                best is None or _key(objective, runtime, cost) < _key(objective, *_rc(best))
            ):
                best = Choice.of(candidate_record(candidate), runtime, cost)
        if progress is not None and (n % step == 0 or n == len(candidates)):
            progress(f"exhaustive: {n}/{len(candidates)} candidates evaluated")
    return best


def runtime_of(
    candidate: Candidate,
    workload: Workload,
    providers: Mapping[str, Provider],
    timeout_s: float,
) -> float | None:
    """One candidate's projected runtime as a trial would measure it; None if it fails."""
    provider = providers[candidate.offering.provider]
    try:
        instances = provider.launch(candidate, "cherrypick-exhaustive")
    except ProvisioningError:
        return None
    try:
        result = provider.execute(candidate, instances, workload, timeout_s).result
    except (ProvisioningError, WorkloadError):
        return None
    finally:
        provider.terminate(instances)
    return result.runtime_s if result.feasible else None


def _rc(choice: Choice) -> tuple[float, float]:
    return choice.runtime_s, choice.cost_usd


def _key(objective: Objective, runtime_s: float, cost_usd: float) -> tuple[float, float]:
    other = runtime_s if objective.kind == "cost" else cost_usd
    return objective.value(runtime_s, cost_usd), other


def true_choice(
    choice: Choice | None,
    candidates: Sequence[Candidate],
    workload: Workload,
    truth: Mapping[str, Provider],
) -> Choice | None:
    """``choice`` (a recommendation, a sweep's best) as the machines truly run it (dry runs)."""
    if choice is None:
        return None
    for candidate in candidates:
        o = candidate.offering
        if (o.provider, o.region, o.instance_type, candidate.nodes) == (
            choice.provider,
            choice.region,
            choice.instance_type,
            choice.nodes,
        ):
            runtime = runtime_of(candidate, workload, truth, math.inf)
            if runtime is None:
                return None
            return Choice.of(
                candidate_record(candidate), runtime, choice.price_per_hour * runtime / 3600
            )
    return None
