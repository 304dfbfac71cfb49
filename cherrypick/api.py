"""The Python API: ``cherrypick.search(...)``, everything ``cherrypick search`` does, from a script.

A custom workload is a small :class:`cherrypick.workloads.base.Workload` subclass; for dry
runs on the simulated provider it only needs ``estimate_runtime`` (or ``simulation_profile``)::

    class MyJob(Workload):
        name = "my-job"
        def setup_commands(self): return ["pip install my-job"]
        def command(self, candidate, node_rank, master_addr, master_port): return "my-job train"
        def parse_result(self, raw): return TrialResult("ok", float(raw))
        def estimate_runtime(self, candidate): return 36000 / candidate.total_gpus

    result = cherrypick.search(MyJob(), "cost", max_runtime_s=4 * 3600, gpus=["A100", "V100"])
    print(result.recommendation, result.trials)
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cherrypick.errors import InputError
from cherrypick.providers.base import Provider
from cherrypick.searching import Display, SearchResult, make_display, run_search
from cherrypick.spec import SearchSpec, parse_spec

__all__ = ["search"]


def search(
    workload: Any,
    objective: str = "cost",
    *,
    params: Mapping[str, Any] | None = None,
    max_runtime_s: float | None = None,
    max_cost_usd: float | None = None,
    provider: str | Provider = "simulated",
    providers: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    gpus: Sequence[str] | None = None,
    max_nodes: int = 4,
    max_price_per_hour: float | None = None,
    inventory: Path | str | None = None,
    max_trials: int = 20,
    max_search_usd: float | None = None,
    ei_fraction: float = 0.10,
    min_trials: int = 8,
    min_chance: float = 0.01,
    cost_aware: bool = False,
    strategy: str = "cherrypick",
    parallel: int = 1,
    seed: int = 0,
    trial_timeout_s: float = 3600.0,
    store: Path | str | None = None,
    progress: bool | Display = False,
    force: bool = False,
) -> SearchResult:
    """Search for the best configuration for ``workload``; returns a :class:`SearchResult`
    (``.recommendation``, ``.runners_up``, ``.trials`` as a DataFrame, ...).

    ``workload`` is a :class:`Workload` object or a registered name (with ``params``).
    ``objective`` is ``"cost"`` (under ``max_runtime_s``) or ``"runtime"`` (under
    ``max_cost_usd``). ``provider="simulated"`` is a dry run; ``"cloud"`` runs real trials
    through each cloud's registered provider (``providers=["ssh"]`` with ``inventory``: your own
    machines); a :class:`Provider` object runs every trial.
    ``store`` keeps the trials (an existing store of the same search is resumed); by default
    they live in a temporary file. ``progress=True`` shows the trials on stderr (a live table
    on a terminal, else a line per event); a :class:`~cherrypick.searching.display.Display`
    object receives the events. When the performance model says no candidate can do the job
    (none fits in memory, or none has ``min_chance`` of meeting the limit), the search raises
    :class:`~cherrypick.errors.HopelessJobError` before any trial; ``force=True`` searches anyway.
    ``cost_aware`` (``stop.cost_aware`` of a search file): weigh what each trial costs against
    what it may save (the recommendation may then be a configuration no trial ran: its
    ``trial_id`` is None). ``max_trials=0``: no trial, the performance model's pick untried.
    """
    spec = _spec(
        workload,
        params,
        objective={"kind": objective, "max_runtime_s": max_runtime_s, "max_cost_usd": max_cost_usd},
        filters={
            "providers": _list(providers),
            "regions": _list(regions),
            "gpus": _list(gpus),
            "max_nodes": max_nodes,
            "max_price_per_hour": max_price_per_hour,
        },
        budget={"max_trials": max_trials, "max_search_usd": max_search_usd},
        stop={
            "ei_fraction": ei_fraction,
            "min_trials": min_trials,
            "min_chance": min_chance,
            "cost_aware": cost_aware,
        },
        strategy=strategy,
        inventory=None if inventory is None else str(inventory),
        parallel=parallel,
        seed=seed,
        trial_timeout_s=trial_timeout_s,
    )
    job = None if isinstance(workload, str) else workload
    display = make_display() if progress is True else (progress or None)
    options: dict[str, Any] = {
        "workload": job,
        "display": display,
        "force": force,
        **_provider_options(provider),
    }
    try:
        if store is not None:
            return run_search(spec, store_path=store, **options)
        with tempfile.TemporaryDirectory(prefix="cherrypick-") as scratch:
            return run_search(spec, store_path=Path(scratch) / "search.sqlite", **options)
    finally:
        if progress is True and display is not None:
            display.close()


def _spec(workload: Any, params: Mapping[str, Any] | None, **sections: Any) -> SearchSpec:
    from cherrypick.workloads.base import Workload

    if isinstance(workload, str):
        named = {"name": workload, "params": dict(params or {})}
    elif isinstance(workload, Workload):
        if params:
            raise InputError("params are for a workload given by name; configure the object")
        named = {"name": workload.name or type(workload).__name__, "params": {}}
    else:
        raise InputError(
            "workload must be a Workload object or a registered name,"
            f" not {type(workload).__name__}"
        )
    return parse_spec({"workload": named, **sections}, source="cherrypick.search()")


def _provider_options(provider: str | Provider) -> dict[str, Any]:
    if isinstance(provider, Provider):
        return {"dry_run": False, "providers": _EveryCloud(provider)}
    if provider == "simulated":
        return {"dry_run": True}
    if provider == "cloud":
        return {"dry_run": False}
    raise InputError(
        f"provider must be 'simulated', 'cloud' or a Provider object, not {provider!r}"
    )


def _list(names: Sequence[str] | None) -> list[str] | None:
    if names is None:
        return None
    return [names] if isinstance(names, str) else list(names)


class _EveryCloud(Mapping[str, Provider]):
    """One provider object behind every cloud name."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def __getitem__(self, key: str) -> Provider:
        return self.provider

    def __iter__(self) -> Any:
        return iter((self.provider.name or "provider",))

    def __len__(self) -> int:
        return 1
