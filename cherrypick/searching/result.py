"""What a search returns: the recommendation, the runners-up, the spend, and the trials.

Private module; import :class:`SearchResult` and :class:`Choice` from ``cherrypick.searching``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cherrypick.optimizer.base import Objective
from cherrypick.store import TrialRow

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Choice", "SearchResult", "format_duration", "format_summary"]


@dataclass(frozen=True)
class Choice:
    """One configuration with its (projected full-job) runtime and cost."""

    provider: str
    region: str
    instance_type: str
    gpu: str
    gpus_per_node: int
    nodes: int
    price_per_hour: float
    runtime_s: float
    cost_usd: float
    trial_id: int | None = None

    @classmethod
    def of(
        cls,
        candidate: Mapping[str, Any],
        runtime_s: float,
        cost_usd: float,
        trial_id: int | None = None,
    ) -> Choice:
        return cls(
            provider=str(candidate["provider"]),
            region=str(candidate["region"]),
            instance_type=str(candidate["instance_type"]),
            gpu=str(candidate["gpu"]),
            gpus_per_node=int(candidate["gpus_per_node"]),
            nodes=int(candidate["nodes"]),
            price_per_hour=float(candidate["price_per_hour"]),
            runtime_s=float(runtime_s),
            cost_usd=float(cost_usd),
            trial_id=trial_id,
        )

    def describe(self) -> str:
        return (
            f"{self.provider} {self.region} {self.instance_type}"
            f" ({self.gpus_per_node}x{self.gpu}) x {self.nodes}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchResult:
    """A finished search. ``remaining_improvement`` is how sure the model is: the best expected
    improvement left among untried candidates, as a fraction of the recommendation's value
    (None for strategies without a model). An exhaustive dry run sets ``optimum``, the best
    configuration as the machines truly run (without one run's noise), and
    ``recommendation_true``, the recommended configuration measured the same way; ``gap``
    compares the two."""

    objective: Objective
    recommendation: Choice | None
    runners_up: tuple[Choice, ...]
    trials_used: int
    search_cost_usd: float
    stopped_because: str
    remaining_improvement: float | None
    rows: tuple[TrialRow, ...] = field(repr=False)
    store_path: str | None = None
    optimum: Choice | None = None
    recommendation_true: Choice | None = None

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial (see ``cherrypick.report.trials_frame``)."""
        from cherrypick.report.frame import trials_frame

        return trials_frame(self.rows, _objective_mapping(self.objective))

    @property
    def gap(self) -> float | None:
        """How much worse the recommendation is than the optimum (0.03: 3%), if both exist."""
        found_choice = self.recommendation_true or self.recommendation
        if found_choice is None or self.optimum is None:
            return None
        found, best = (_value(self.objective, c) for c in (found_choice, self.optimum))
        return found / best - 1.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "objective": _objective_mapping(self.objective),
            "recommendation": _maybe(self.recommendation),
            "runners_up": [c.to_dict() for c in self.runners_up],
            "trials_used": self.trials_used,
            "search_cost_usd": self.search_cost_usd,
            "stopped_because": self.stopped_because,
            "remaining_improvement": self.remaining_improvement,
            "store": self.store_path,
        }
        if self.optimum is not None:
            out["optimum"] = self.optimum.to_dict()
            out["recommendation_true"] = _maybe(self.recommendation_true)
            out["gap"] = self.gap
        return out


def _maybe(choice: Choice | None) -> dict[str, Any] | None:
    return None if choice is None else choice.to_dict()


def _objective_mapping(objective: Objective) -> dict[str, Any]:
    return {
        "kind": objective.kind,
        "max_runtime_s": objective.max_runtime_s,
        "max_cost_usd": objective.max_cost_usd,
    }


def _value(objective: Objective, choice: Choice) -> float:
    return objective.value(choice.runtime_s, choice.cost_usd)


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _line(choice: Choice) -> str:
    return (
        f"{choice.describe()}: {format_duration(choice.runtime_s)}, ${choice.cost_usd:,.2f}"
        f" (${choice.price_per_hour:,.2f}/h)"
    )


def format_summary(result: SearchResult) -> str:
    """The human-readable end of a search."""
    rec = result.recommendation
    lines = [f"recommended: {_line(rec)}" if rec else "recommended: none (no feasible trial)"]
    luckier = [
        c
        for c in result.runners_up
        if rec and _value(result.objective, c) < _value(result.objective, rec)
    ]
    if rec and luckier:
        lines.append(
            f"  (chosen over {luckier[0].describe()}, measured lower: one run of each is noisy,"
            " and the model, which weighs each run against the others and the performance"
            " model, believes this one better)"
        )
    if result.remaining_improvement is not None:
        lines.append(
            f"confidence: the model expects at most {result.remaining_improvement:.1%}"
            " improvement from untried configurations"
        )
    lines.append(
        f"trials: {result.trials_used}, search spend ${result.search_cost_usd:,.2f}"
        f" (stopped: {result.stopped_because})"
    )
    lines += [f"runner-up: {_line(c)}" for c in result.runners_up]
    if result.optimum is not None:
        lines.append(f"true optimum: {_line(result.optimum)}")
        if result.recommendation_true is not None:
            lines.append(f"recommendation, as it truly runs: {_line(result.recommendation_true)}")
        if result.gap is not None:
            lines.append(f"recommendation is {result.gap:.1%} from the optimum")
    return "\n".join(lines)
