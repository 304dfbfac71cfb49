"""What a search returns: the recommendation, the runners-up, the spend, and the trials."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cherrypick.optimizer.base import Objective
from cherrypick.store import TrialRow
from cherrypick.trials import CandidateRecord
from cherrypick.units import format_duration

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Choice", "Preference", "SearchResult", "format_choice", "format_summary"]


@dataclass(frozen=True)
class Choice(CandidateRecord):
    """A configuration with the runtime and cost of its full job: what a result recommends (a
    stored trial's, with its ``trial_id``) and what a user reads, without the trial's details."""

    runtime_s: float
    cost_usd: float
    trial_id: int | None = None

    @classmethod
    def from_record(
        cls,
        record: CandidateRecord,
        runtime_s: float,
        cost_usd: float,
        trial_id: int | None = None,
    ) -> Choice:
        return cls(**asdict(record), runtime_s=runtime_s, cost_usd=cost_usd, trial_id=trial_id)

    @classmethod
    def of_trial(cls, row: TrialRow) -> Choice:
        assert row.runtime_s is not None and row.cost_usd is not None
        return cls.from_record(row.candidate, row.runtime_s, row.cost_usd, row.trial_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Preference:
    """Why the recommendation is not the best measured run: each one's measured value and the
    value the model believes each configuration truly has (in the objective's units)."""

    measured_best: int  # its trial id
    measured: float
    believed: float
    recommendation_measured: float
    recommendation_believed: float

    def text(self, unit: str) -> str:
        def show(value: float) -> str:
            return f"${value:,.2f}" if unit == "usd" else format_duration(value)

        return (
            f"not trial {self.measured_best}, which measured {show(self.measured)} against"
            f" {show(self.recommendation_measured)}: one run of each is noisy, and the model,"
            " which weighs each run against the others and the performance model, believes"
            f" this one truly {show(self.recommendation_believed)} and that one"
            f" {show(self.believed)}"
        )


@dataclass(frozen=True)
class SearchResult:
    """A finished search. How sure the model is: ``confidence``, P(within), its probability
    that the recommendation is truly within ``within`` of the best configuration and meets the
    limit; and ``remaining_improvement``, the best expected improvement left among untried
    candidates, as a fraction of the recommendation's value (both None for strategies without
    a model). ``preference``: why the recommendation is not the best measured run, if not."""

    objective: Objective
    recommendation: Choice | None
    runners_up: tuple[Choice, ...]
    trials_used: int
    search_cost_usd: float
    stopped_because: str
    remaining_improvement: float | None
    within: float
    confidence: float | None
    rows: tuple[TrialRow, ...] = field(repr=False)
    store_path: str | None = None
    preference: Preference | None = None
    #: For a recommendation no trial ran after trials (a cost-aware search): P(within) of the
    #: best tried run, which the model is less sure of (None: no trial met the limit).
    tried_confidence: float | None = None

    @property
    def why(self) -> str | None:
        """In words, why the recommendation is not the best measured run (None if it is)."""
        unit = "usd" if self.objective.kind == "cost" else "s"
        rec = self.recommendation
        if rec is not None and rec.trial_id is None and self.trials_used:
            tried = (
                "no trial met the limit"
                if self.tried_confidence is None
                else f"against {self.tried_confidence:.0%} for the best tried run"
            )
            return (
                f"untried: the model is surer of it than of any run it tried (P(within"
                f" {self.within:.0%}) {self.confidence or 0.0:.0%}, {tried})"
            )
        return None if self.preference is None else self.preference.text(unit)

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial (see ``cherrypick.report.trials_frame``)."""
        from cherrypick.report.frame import build_frame

        return build_frame(self.rows, self.objective)

    def to_json(self) -> dict[str, Any]:
        return {
            "objective": {
                "kind": self.objective.kind,
                "max_runtime_s": self.objective.max_runtime_s,
                "max_cost_usd": self.objective.max_cost_usd,
            },
            "recommendation": self.recommendation and self.recommendation.to_dict(),
            "runners_up": [c.to_dict() for c in self.runners_up],
            "trials_used": self.trials_used,
            "search_cost_usd": self.search_cost_usd,
            "stopped_because": self.stopped_because,
            "remaining_improvement": self.remaining_improvement,
            "within": self.within,
            "confidence": self.confidence,
            "preference": self.preference and asdict(self.preference),
            "tried_confidence": self.tried_confidence,
            "why": self.why,
            "store": self.store_path,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], rows: Sequence[TrialRow]) -> SearchResult:
        """The result as :meth:`to_json` wrote it (a store keeps it), with the store's trials;
        ``KeyError``/``TypeError`` if it is not one."""
        rec = data["recommendation"]
        return cls(
            objective=Objective(**data["objective"]),
            recommendation=None if rec is None else Choice(**rec),
            runners_up=tuple(Choice(**c) for c in data["runners_up"]),
            trials_used=int(data["trials_used"]),
            search_cost_usd=float(data["search_cost_usd"]),
            stopped_because=str(data["stopped_because"]),
            remaining_improvement=data["remaining_improvement"],
            within=float(data.get("within", 0.10)),  # a result stored before it was reported
            confidence=data.get("confidence"),
            rows=tuple(rows),
            store_path=data["store"],
            preference=None if not data.get("preference") else Preference(**data["preference"]),
            tried_confidence=data.get("tried_confidence"),
        )


def format_choice(choice: Choice) -> str:
    return (
        f"{choice.describe()}: {format_duration(choice.runtime_s)}, ${choice.cost_usd:,.2f}"
        f" (${choice.price_per_hour:,.2f}/h)"
    )


def format_summary(result: SearchResult) -> str:
    """The human-readable end of a search."""
    rec = result.recommendation
    untried = (
        " (untried, as the performance model predicts it)" if rec and rec.trial_id is None else ""
    )
    lines = [
        f"recommended{untried}: {format_choice(rec)}"
        if rec
        else "recommended: none (no feasible trial)"
    ]
    if result.why:
        lines.append(f"  ({result.why})")
    if result.confidence is not None:
        better = "cheaper" if result.objective.kind == "cost" else "faster"
        lines.append(
            f"confidence: P(within {result.within:.0%}) = {result.confidence:.0%}, the model's"
            f" chance that no configuration is truly more than {result.within:.0%} {better}"
        )
    if result.remaining_improvement is not None:
        lines.append(
            f"  it expects at most {result.remaining_improvement:.1%} improvement from"
            " untried configurations"
        )
    lines.append(
        f"trials: {result.trials_used}, search spend ${result.search_cost_usd:,.2f}"
        f" (stopped: {result.stopped_because})"
    )
    lines += [f"runner-up: {format_choice(c)}" for c in result.runners_up]
    return "\n".join(lines)
