"""The search file: one YAML document that says what to search for, validated with pydantic.

Example (``configs/examples/`` ships complete ones)::

    workload:
      name: cnn
      params: {model: alexnet, batch_size: 128, epochs: 30, dataset_size: 13000, classes: 10}
    objective: {kind: cost, max_runtime_s: 7200}   # or {kind: runtime, max_cost_usd: 50}
    filters: {providers: [aws, gcp], gpus: [A100, V100], max_nodes: 4, max_price_per_hour: 40}
    budget: {max_trials: 20, max_search_usd: 100}
    stop: {ei_fraction: 0.1, min_trials: 8}
    prior: performance-model          # or none: the optimiser starts blind, as CherryPick does
    simulator: {noise: 0.05, model_error: 0.10, capacity_error_rate: 0}   # dry runs only
    parallel: 1
    inventory: hosts.yaml             # your own machines, searched with filters.providers: [ssh]
    clouds: {aws: {spot: true}, gcp: {project: my-project}}   # per-cloud settings (CloudSpec)

Every mistake is reported as a :class:`~cherrypick.errors.ValidationError` naming the file and the
field's path (``objective.max_runtime_s``), never as a pydantic traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)
from pydantic import ValidationError as PydanticError

from cherrypick._text import field_message, read_text
from cherrypick.errors import ValidationError

__all__ = [
    "BudgetSpec",
    "CloudSpec",
    "FilterSpec",
    "ObjectiveSpec",
    "SearchSpec",
    "SimulatorSpec",
    "StopSpec",
    "WorkloadSpec",
    "load_spec",
    "parse_spec",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkloadSpec(_Section):
    """A registered workload by name and the parameters its factory validates."""

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class ObjectiveSpec(_Section):
    """Minimise ``cost`` (under ``max_runtime_s``) or ``runtime`` (under ``max_cost_usd``)."""

    kind: Literal["cost", "runtime"] = "cost"
    max_runtime_s: PositiveFloat | None = None
    max_cost_usd: PositiveFloat | None = None


class FilterSpec(_Section):
    """Which catalog offerings and node counts the search may use (see ``CatalogFilter``)."""

    providers: list[str] | None = None
    regions: list[str] | None = None
    gpus: list[str] | None = None
    min_gpu_memory_gib: float | None = Field(default=None, ge=0)
    max_nodes: PositiveInt = 4
    max_price_per_hour: PositiveFloat | None = None


class BudgetSpec(_Section):
    """When to stop regardless of the model: trials run, dollars spent on trials. With the
    performance model as prior, ``max_trials: 0`` runs no trial and recommends the model's pick."""

    max_trials: NonNegativeInt = 20
    max_search_usd: PositiveFloat | None = None


class StopSpec(_Section):
    """CherryPick's stop rule: best expected improvement below a fraction of the best value,
    after at least ``min_trials`` trials. CherryPick's 6 counts its 3 quasi-random starting
    points; a search with the performance model as its prior aims from the first trial, and its
    expected improvement is soon small, so the trial count is what decides how close it comes:
    8 by default (dry-run benchmark, docs/benchmarks.md: 88.5% of searches within 5% of the
    optimum over 30 seeds, 87.0% with 6). ``min_chance``: under a deadline (or cost cap) that
    no trial has met yet, stop once no untried configuration has even this probability of
    meeting it.

    ``within``: the share a search's confidence is about: P(within) is the model's probability
    that the recommendation is truly within this share of the best configuration (and meets the
    limit); every search reports it. ``confidence``: stop once P(within) reaches it, in place of
    the expected-improvement rule (after ``min_trials`` all the same).

    ``cost_aware: true``: where the performance model can predict what each trial costs (boot,
    set-up, the short run at the candidate's price), a trial is chosen for what it may save on
    the job less what it costs, and the search stops, ``min_trials`` or not, once no trial is
    expected to save more than it costs; it may then recommend an untried configuration the
    model is surer of than of any run it tried, and where no trial pays before the first, it
    takes the model's pick untried. It spends far less, and finds the optimum less often
    (docs/benchmarks.md). ``false`` (default): trials count as free, as in CherryPick. Either way
    the search prints the model's pick and the spend it expects before the first trial, and says
    when no trial would pay for itself (``--trials 0`` takes the pick)."""

    ei_fraction: float = Field(default=0.10, ge=0)
    min_trials: PositiveInt = 8
    min_chance: float = Field(default=0.01, ge=0, le=1)
    within: float = Field(default=0.10, gt=0, le=1)
    confidence: float | None = Field(default=None, gt=0, lt=1)
    cost_aware: bool = False


class SimulatorSpec(_Section):
    """How the dry run's simulated cloud departs from the performance model (lognormal sigmas).

    ``noise``: one run's, by hardware. ``model_error``: the model's speed error, one factor per
    GPU model (and per provider network, growing with the nodes). ``memory_error``: the model's
    memory error, one factor per GPU model on what the memory model estimates (allocator slack,
    workspaces, CUDA context), so that its out-of-memory verdict near a GPU's limit can be wrong
    both ways; 0 (off) by default, 0.5 is what the search's prior assumes. ``capacity_error_rate``:
    the share of launches refused for want of capacity. ``SimulatedProvider`` documents each.
    """

    noise: float = Field(default=0.05, ge=0, le=1)
    model_error: float = Field(default=0.10, ge=0, le=1)
    memory_error: float = Field(default=0.0, ge=0, le=1)
    capacity_error_rate: float = Field(default=0.0, ge=0, le=1)


class CloudSpec(_Section):
    """One cloud's settings (``clouds.aws``, ``clouds.gcp``, ``clouds.azure``); see
    :class:`cherrypick.providers.base.CloudOptions` for each field."""

    image: str | None = Field(default=None, min_length=1)
    ssh_user: str | None = Field(default=None, min_length=1)
    ssh_cidr: str | None = Field(default=None, min_length=1)
    spot: bool = False
    project: str | None = Field(default=None, min_length=1)
    subscription_id: str | None = Field(default=None, min_length=1)


class SearchSpec(_Section):
    """A whole search. ``store`` is the trial store's path and ``inventory`` the file of your own
    machines (both relative to the working directory); ``connect_limit_s`` is how long a machine
    may take to answer SSH after launch (boot)."""

    workload: WorkloadSpec
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    filters: FilterSpec = Field(default_factory=FilterSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    stop: StopSpec = Field(default_factory=StopSpec)
    strategy: str = "cherrypick"
    prior: Literal["performance-model", "none"] = "performance-model"
    simulator: SimulatorSpec = Field(default_factory=SimulatorSpec)
    parallel: PositiveInt = 1
    seed: int = Field(default=0, ge=0)
    trial_timeout_s: PositiveFloat = 3600.0
    store: str = "cherrypick-search.sqlite"
    inventory: str | None = Field(default=None, min_length=1)
    connect_limit_s: PositiveFloat = 600.0
    clouds: dict[Literal["aws", "gcp", "azure"], CloudSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _inventory_for_ssh(self) -> SearchSpec:
        if self.filters.providers and "ssh" in self.filters.providers and not self.inventory:
            raise ValueError(
                "filters.providers lists ssh: name your machines' inventory file in 'inventory'"
            )
        return self

    @model_validator(mode="after")
    def _parallel_within_budget(self) -> SearchSpec:
        if self.budget.max_trials and self.parallel > self.budget.max_trials:
            raise ValueError(
                f"parallel ({self.parallel}) exceeds budget.max_trials ({self.budget.max_trials})"
            )
        return self

    def identity(self) -> dict[str, Any]:
        """What a resumed search must share with the stored one: everything but the store path."""
        return self.model_dump(mode="json", exclude={"store"})


def parse_spec(data: Any, source: str = "search file") -> SearchSpec:
    """Validate a parsed YAML document; the first error names its field path."""
    if not isinstance(data, dict):
        raise ValidationError(source, "expected a mapping with at least a 'workload' section")
    try:
        return SearchSpec.model_validate(data)
    except PydanticError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"]) or None
        raise ValidationError(source, field_message(first), field=path) from None


def load_spec(path: Path | str) -> SearchSpec:
    """Read and validate a search file; an unreadable file, or one not UTF-8 or not YAML, is an
    ``InputError``."""
    source = str(path)
    try:
        data = yaml.safe_load(read_text(path, "search file"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = None if mark is None else mark.line + 1
        raise ValidationError(source, f"not valid YAML: {exc}", line=line) from None
    return parse_spec(data, source)
