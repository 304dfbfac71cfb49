"""What a search needs before its first trial, each built once: the search space (catalog,
features, GPU datasheets), the optimiser's problem, the providers and the workload."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cherrypick.catalog import CatalogFilter, GpuSpec, candidate_features, load_catalog, load_gpus
from cherrypick.errors import InputError, ValidationError, WorkloadError
from cherrypick.optimizer.base import Objective, Problem
from cherrypick.providers.base import (
    Candidate,
    CloudOptions,
    Offering,
    Provider,
    provider_registry,
)
from cherrypick.spec import SearchSpec
from cherrypick.units import job_cost
from cherrypick.workloads.base import Workload, create_workload

__all__ = [
    "MIN_FIT",
    "SearchSpace",
    "build_problem",
    "build_providers",
    "build_space",
    "build_workload",
    "cloud_options",
    "objective_of",
    "performance_prior",
    "trial_costs",
    "search_tag",
]


@dataclass(frozen=True)
class SearchSpace:
    """What a search chooses from, read once. ``catalog``: every candidate the filters keep, in
    catalog order; ``candidates``: the cheapest of each distinct hardware among them (the same
    machine in several regions runs a job equally fast, so only the cheapest can be the better
    choice, under either objective; about 1000 become 430 for the bundled catalog), with their
    unscaled ``features`` (one row each)."""

    catalog: tuple[Candidate, ...]
    candidates: tuple[Candidate, ...]
    feature_names: tuple[str, ...]
    features: NDArray[np.float64]
    gpus: Mapping[str, GpuSpec]


def build_space(spec: SearchSpec) -> SearchSpace:
    """The filtered catalog (and inventory) times node counts (a resume rebuilds the same)."""
    f = spec.filters
    gpus = load_gpus()
    clouds = None if f.providers is None else [p for p in f.providers if p != "ssh"]
    chosen = []
    if clouds is None or clouds:
        offerings = _spot_priced(load_catalog(clouds, gpus=gpus), spec)
        chosen = CatalogFilter(
            clouds, f.regions, f.gpus, f.min_gpu_memory_gib, f.max_nodes, f.max_price_per_hour
        ).candidates(offerings, gpus)
    if spec.inventory is not None:
        chosen += _inventory_candidates(spec, gpus)
    if not chosen:
        raise ValidationError(
            "search file", "no catalog offering passes the filters", field="filters"
        )
    names, matrix = candidate_features(chosen, gpus)
    kept = _cheapest_per_hardware(chosen, matrix)
    return SearchSpace(
        tuple(chosen), tuple(chosen[i] for i in kept), tuple(names), matrix[kept], gpus
    )


def _spot_priced(offerings: Sequence[Offering], spec: SearchSpec) -> list[Offering]:
    """A cloud set to ``spot`` is priced at the catalog's spot price (an offering without one
    cannot be launched as spot, and is left out)."""
    spot = {name for name, cloud in spec.clouds.items() if cloud.spot}
    if not spot:
        return list(offerings)
    priced: list[Offering] = []
    for o in offerings:
        if o.provider not in spot:
            priced.append(o)
        elif o.spot_price_per_hour is not None:
            extra = {**o.extra, "spot": True}
            priced.append(dataclasses.replace(o, price_per_hour=o.spot_price_per_hour, extra=extra))
    return priced


def _inventory_candidates(spec: SearchSpec, gpus: Mapping[str, GpuSpec]) -> list[Candidate]:
    """The inventory's hosts as candidates: at most as many nodes as an offering has hosts."""
    from cherrypick.providers.inventory import load_inventory, require_priced

    assert spec.inventory is not None
    f = spec.filters
    inventory = load_inventory(spec.inventory)
    require_priced(inventory, spec.objective.kind)
    keep = CatalogFilter(
        None, f.regions, f.gpus, f.min_gpu_memory_gib, f.max_nodes, f.max_price_per_hour
    )
    offerings = {o.key for o in keep.apply(inventory.offerings(), gpus)}
    limit = math.inf if f.max_price_per_hour is None else f.max_price_per_hour
    return [
        c
        for c in inventory.candidates(f.max_nodes)
        if c.offering.key in offerings and c.price_per_hour <= limit
    ]


def _cheapest_per_hardware(
    candidates: Sequence[Candidate], matrix: NDArray[np.float64]
) -> list[int]:
    """Indices of the cheapest candidate per distinct feature row, in catalog order."""
    cheapest: dict[bytes, int] = {}
    for i, candidate in enumerate(candidates):
        row = matrix[i].tobytes()
        if (
            row not in cheapest
            or candidate.price_per_hour < candidates[cheapest[row]].price_per_hour
        ):
            cheapest[row] = i
    return sorted(cheapest.values())


def objective_of(spec: SearchSpec) -> Objective:
    o = spec.objective
    return Objective(o.kind, o.max_runtime_s, o.max_cost_usd)


def build_problem(
    space: SearchSpace,
    objective: Objective,
    workload: Workload | None = None,
    cost_model: Workload | None = None,
) -> Problem:
    """The optimiser's view; with ``workload``, the performance model's runtimes as its prior;
    with ``cost_model`` (a workload the model can predict), what each trial will cost."""
    candidates = space.candidates
    prices = np.array([c.price_per_hour for c in candidates], dtype=np.float64)
    prior = None if workload is None else performance_prior(candidates, workload, space.gpus)
    runtimes, fits = (None, None) if prior is None else prior
    _, groups = np.unique([c.offering.gpu for c in candidates], return_inverse=True)
    return Problem(
        space.features,
        prices,
        objective,
        space.feature_names,
        runtimes,
        groups.astype(np.int64),
        prior_fit=fits,
        trial_cost_usd=trial_costs(candidates, cost_model, space.gpus),
    )


#: Below this chance of fitting in memory a candidate is a predicted failure (NaN): a trial would
#: be wasted 19 times in 20. Above it, the prior gives its runtime and the odds (``prior_fit``).
MIN_FIT = 0.05


def performance_prior(
    candidates: Sequence[Candidate], workload: Workload, gpus: Mapping[str, GpuSpec]
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """Each candidate's runtime as the performance model predicts it (NaN: predicted to fail,
    fitting in memory with a chance under ``MIN_FIT``) and its chance of fitting in memory, or
    None if the workload can be neither profiled nor estimated."""
    from cherrypick.perfmodel import PerformanceModel

    model = PerformanceModel(gpus)
    try:
        runtimes = [model.runtime(c, workload, min_fit=MIN_FIT) for c in candidates]
        fits = [model.fit_probability(c, workload) for c in candidates]
    except WorkloadError:
        return None  # a workload that can be neither profiled nor estimated has no prior
    runtime = np.array([math.nan if r is None else r for r in runtimes], dtype=np.float64)
    return runtime, np.array(fits, dtype=np.float64)


def trial_costs(
    candidates: Sequence[Candidate], workload: Workload | None, gpus: Mapping[str, GpuSpec]
) -> NDArray[np.float64] | None:
    """What a trial of each candidate is expected to cost (``PerformanceModel.trial_seconds``
    at its price), or None if the workload can be neither profiled nor estimated."""
    from cherrypick.perfmodel import PerformanceModel

    if workload is None:
        return None
    model = PerformanceModel(gpus)
    try:
        seconds = [model.trial_seconds(c, workload) for c in candidates]
    except WorkloadError:
        return None
    return np.array(
        [job_cost(c.price_per_hour, s) for c, s in zip(candidates, seconds, strict=True)]
    )


def build_workload(spec: SearchSpec) -> Workload:
    return create_workload(spec.workload.name, spec.workload.params)


def build_providers(
    space: SearchSpace,
    dry_run: bool,
    spec: SearchSpec,
    run_noise: bool = True,
    store: Any = None,
) -> dict[str, Provider]:
    """One provider per cloud the candidates use; a dry run puts the simulator behind them all.
    ``store`` (the search's trial store) keeps an inventory's reservations.

    ``run_noise=False`` (dry runs): the simulated machines as they truly are, without the noise
    of any one run; the dry-run benchmark measures the true optimum with it.
    """
    clouds = sorted({c.offering.provider for c in space.catalog})
    if dry_run:
        sim = spec.simulator
        simulator = provider_registry.create(
            "simulated",
            spec.seed,
            gpus=space.gpus,
            noise=sim.noise if run_noise else 0.0,
            model_error=sim.model_error,
            memory_error=sim.memory_error,
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
    return {cloud: _provider(cloud, spec, store) for cloud in clouds}


def _provider(name: str, spec: SearchSpec, store: Any) -> Provider:
    if name != "ssh":
        return provider_registry.create(name, cloud_options(spec, name))
    from cherrypick.providers.inventory import load_inventory

    assert spec.inventory is not None  # ssh offerings come from the inventory only
    inventory = load_inventory(spec.inventory)
    return provider_registry.create("ssh", inventory, store, connect_limit_s=spec.connect_limit_s)


def cloud_options(spec: SearchSpec, name: str) -> CloudOptions:
    """The search file's ``clouds.<name>`` settings as the provider takes them."""
    cloud = spec.clouds.get(name)  # type: ignore[call-overload]
    return CloudOptions() if cloud is None else CloudOptions(**cloud.model_dump())


def search_tag(identity: Mapping[str, Any], seed: int) -> str:
    """The tag on every machine of one search: the same again when the search resumes."""
    digest = hashlib.sha256(json.dumps([identity, seed], sort_keys=True).encode()).hexdigest()
    return f"cherrypick-{digest[:12]}"
