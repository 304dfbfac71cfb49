"""The search: the one place where strategy, providers, workload and store meet.

Each step asks the strategy for ``parallel`` candidates, runs them as trials (launch, wait, run,
collect, terminate), tells the strategy what they measured, and stops on the strategy's stop rule,
the trial budget or the spend budget. Every trial is written to the store as it finishes.

Resuming replays the same decisions: the strategy is rebuilt from the same seed and candidate
list, and each proposal whose trial id already finished in the store is answered from the store
instead of being run. Proposals depend only on the seed and the observations told so far, so the
resumed search proposes exactly what the uninterrupted one did; only trials that were in flight
run again.

Named ``searching`` (not ``search``) so that ``cherrypick.search`` stays the API function.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cherrypick.errors import CherrypickError, SearchInterrupted, StoreError
from cherrypick.optimizer import BayesianStrategy, StopRule, Strategy, make_strategy
from cherrypick.providers.base import Candidate, Instance, Provider
from cherrypick.searching.result import Choice, SearchResult, format_duration
from cherrypick.searching.setup import (
    build_candidates,
    build_problem,
    build_providers,
    build_workload,
    cheapest_per_hardware,
    evaluate_all,
    objective_of,
    search_tag,
    true_choice,
)
from cherrypick.searching.trial import LiveInstances, TrialOutcome, TrialRunner
from cherrypick.spec import SearchSpec, parse_spec
from cherrypick.store import TrialRow, TrialStore
from cherrypick.workloads.base import Workload

__all__ = ["Display", "Search", "run_search", "stderr_display"]

Display = Callable[[str], None]

#: How many runners-up a result lists.
RUNNERS_UP = 3


def stderr_display(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class _Progress:
    trials: int = 0
    spend: float = 0.0


class Search:
    """One search over ``candidates``; :meth:`run` starts or resumes it in ``store``."""

    def __init__(
        self,
        spec: SearchSpec,
        candidates: Sequence[Candidate],
        workload: Workload,
        providers: Mapping[str, Provider],
        store: TrialStore,
        display: Display | None = None,
        identity: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.candidates = list(candidates)
        self.objective = objective_of(spec)
        self.providers = providers
        self.store = store
        self.display = display
        self.identity = dict(identity if identity is not None else spec.identity())
        self._index = {c.key: i for i, c in enumerate(self.candidates)}
        self._workload = workload
        self._live = LiveInstances()
        self._runner = TrialRunner(
            workload,
            providers,
            store,
            search_tag(self.identity, spec.seed),
            spec.trial_timeout_s,
            self._live,
        )

    def run(self) -> SearchResult:
        stored = self._open()
        strategy = self._strategy()
        progress = _Progress()
        try:
            reason = self._loop(strategy, stored, progress)
        except KeyboardInterrupt:
            self._terminate_all()
            self.store.finish("interrupted", None)
            raise SearchInterrupted(
                f"search interrupted after {progress.trials} trials; machines terminated, resume"
                f" with --resume {self.store.path}"
            ) from None
        except Exception:
            self._terminate_all()
            self.store.finish("failed", None)
            raise
        finally:
            self._terminate_all()
        result = self._result(strategy, progress, reason)
        self.store.finish("finished", result.to_json())
        return result

    def _open(self) -> dict[int, TrialRow]:
        """Begin or resume the stored search; terminate what a crash left running."""
        if self.store.has_search():
            self.store.resume(self._stored_if_same())
            if self.store.seed() != self.spec.seed:
                raise StoreError(f"{self.store.path} holds a search with another seed")
        else:
            self.store.begin(self.identity, self.spec.seed)
        self._terminate_stored()
        return {row.trial_id: row for row in self.store.finished_trials()}

    def _strategy(self) -> Strategy:
        stop = self.spec.stop
        prior = self._workload if self.spec.prior == "performance-model" else None
        problem = build_problem(self.candidates, self.objective, prior)
        rule = StopRule(stop.ei_fraction, stop.min_trials, stop.min_chance)
        return make_strategy(self.spec.strategy, problem, self.spec.seed, rule)

    def _stored_if_same(self) -> Mapping[str, Any]:
        """The stored specification if it is this search's as this version reads it (a field
        added since the search began takes its default), else ours, whose difference the store
        then names."""
        stored = self.store.spec()
        extras = {k: stored.get(k) for k in self.identity.keys() - self.spec.identity().keys()}
        try:
            fields = {k: v for k, v in stored.items() if k not in extras}
            now = {**parse_spec(fields).identity(), **extras}
        except CherrypickError:
            return self.identity
        return stored if now == self.identity else self.identity

    def _loop(self, strategy: Strategy, stored: dict[int, TrialRow], progress: _Progress) -> str:
        budget = self.spec.budget
        while True:
            if progress.trials >= budget.max_trials:
                return "trial budget"
            if budget.max_search_usd is not None and progress.spend >= budget.max_search_usd:
                return "search budget"
            wanted = min(self.spec.parallel, budget.max_trials - progress.trials)
            indices = strategy.ask(wanted)
            if not indices:
                return "no candidates left"
            for outcome in self._batch(progress.trials, indices, stored):
                strategy.tell(outcome.observation())
                progress.trials += 1
                progress.spend += outcome.search_cost_usd
                self._show(outcome, strategy, progress)
            if strategy.should_stop():
                return _stop_reason(strategy)

    def _batch(
        self, first_id: int, indices: list[int], stored: dict[int, TrialRow]
    ) -> list[TrialOutcome]:
        jobs = list(enumerate(indices, start=first_id))
        replayed = {t: self._replay(stored[t], i) for t, i in jobs if t in stored}
        to_run = [(t, i) for t, i in jobs if t not in stored]
        if len(to_run) <= 1:
            ran = [self._runner.run(t, i, self.candidates[i]) for t, i in to_run]
        else:
            with ThreadPoolExecutor(len(to_run)) as pool:
                futures = [
                    pool.submit(self._runner.run, t, i, self.candidates[i]) for t, i in to_run
                ]
                ran = [f.result() for f in futures]
        outcomes = [*replayed.values(), *ran]
        return sorted(outcomes, key=lambda o: o.trial_id)

    def _replay(self, row: TrialRow, index: int) -> TrialOutcome:
        proposed = self.candidates[index].key
        if row.candidate_key != proposed:
            raise StoreError(
                f"{self.store.path}: trial {row.trial_id} ran {row.candidate_key} but the resumed"
                f" search proposes {proposed}; the catalog or cherrypick changed since"
            )
        return TrialOutcome.from_row(row, index)

    def _show(self, outcome: TrialOutcome, strategy: Strategy, progress: _Progress) -> None:
        if self.display is None:
            return
        c = outcome.candidate
        config = (
            f"{c['provider']} {c['region']} {c['instance_type']}"
            f" ({c['gpus_per_node']}x{c['gpu']}) x{c['nodes']}"
        )
        measured = (
            f"{format_duration(outcome.runtime_s)} ${outcome.cost_usd:,.2f}"
            if outcome.runtime_s is not None and outcome.cost_usd is not None
            else outcome.message[:60]
        )
        best = strategy.best()
        best_text = (
            "none yet"
            if best is None
            else f"${best.cost_usd:,.2f} {format_duration(best.runtime_s)}"
        )
        self.display(
            f"trial {outcome.trial_id:>3}  {config:<60} {outcome.status:<9} {measured:<22}"
            f" best {best_text}  (spent ${progress.spend:,.2f})"
        )

    def _result(self, strategy: Strategy, progress: _Progress, reason: str) -> SearchResult:
        rows = self.store.trials()
        by_index = {self._index[r.candidate_key]: r for r in rows if r.candidate_key in self._index}
        ranked = _ranked(strategy, by_index)
        return SearchResult(
            objective=self.objective,
            recommendation=ranked[0] if ranked else None,
            runners_up=tuple(ranked[1 : 1 + RUNNERS_UP]),
            trials_used=progress.trials,
            search_cost_usd=progress.spend,
            stopped_because=reason,
            remaining_improvement=_remaining(strategy),
            rows=tuple(rows),
            store_path=str(self.store.path),
        )

    def _terminate_stored(self) -> None:
        """Machines the store says may still run (a crashed earlier run): terminate them."""
        for row in self.store.live_instances():
            provider = self.providers.get(row.provider)
            if provider is not None:
                provider.terminate([Instance(row.provider, row.instance_id, row.region)])
            self.store.set_instance_state(row.instance_id, "terminated")

    def _terminate_all(self) -> None:
        for provider, instance in self._live.snapshot():
            provider.terminate([instance])
            self._live.discard([instance])
        for provider in {id(p): p for p in self.providers.values()}.values():
            leftovers = list(provider.list_launched(self._runner.tag))
            if leftovers:
                provider.terminate(leftovers)
        self._terminate_stored()


def _ranked(strategy: Strategy, by_index: Mapping[int, TrialRow]) -> list[Choice]:
    """Feasible completed trials, best first (the strategy's own ranking decides the first)."""
    objective = strategy.problem.objective
    best = strategy.recommend()
    order = sorted(
        strategy.feasible(),
        key=lambda r: (
            best is None or r.index != best.index,
            objective.value(r.runtime_s, r.cost_usd),
        ),
    )
    return [_choice(by_index[r.index]) for r in order if r.index in by_index]


def _choice(row: TrialRow) -> Choice:
    assert row.runtime_s is not None and row.cost_usd is not None
    return Choice.of(row.candidate, row.runtime_s, row.cost_usd, row.trial_id)


def _stop_reason(strategy: Strategy) -> str:
    if not len(strategy.untried()):
        return "no candidates left"
    if isinstance(strategy, BayesianStrategy) and strategy.hopeless():
        return "no untried configuration is likely to meet the constraint"
    rule = strategy.stop_rule
    assert rule is not None  # with candidates left, only the rule stops a search
    return (
        f"stop rule: the best expected improvement is below {rule.ei_fraction:.0%} of the best"
        f" after {len(strategy.observations)} trials"
    )


def _remaining(strategy: Strategy) -> float | None:
    best = strategy.best()
    if not isinstance(strategy, BayesianStrategy) or best is None or not len(strategy.untried()):
        return None
    scores = strategy.scores()
    value = strategy.problem.objective.value(best.runtime_s, best.cost_usd)
    return float(scores.values[0]) / value


def run_search(
    spec: SearchSpec,
    *,
    dry_run: bool,
    store_path: Path | str | None = None,
    workload: Workload | None = None,
    providers: Mapping[str, Provider] | None = None,
    display: Display | None = None,
    exhaustive: bool = False,
) -> SearchResult:
    """Run (or resume, if the store holds it) the search ``spec`` describes.

    ``workload`` and ``providers`` override what the spec names (the Python API passes objects);
    ``exhaustive`` (dry runs) also evaluates every candidate and sets ``result.optimum``.
    """
    candidates = build_candidates(spec)
    job = workload if workload is not None else build_workload(spec)
    clouds = providers if providers is not None else build_providers(candidates, dry_run, spec)
    identity = {**spec.identity(), "dry_run": dry_run}
    path = Path(store_path if store_path is not None else spec.store)
    with TrialStore(path) as store:
        space = cheapest_per_hardware(candidates)
        result = Search(spec, space, job, clouds, store, display, identity).run()
    if not exhaustive:
        return result
    # The truth: each machine as it runs on average, not as one noisy run measured it.
    truth = (
        build_providers(candidates, True, spec, run_noise=False) if providers is None else clouds
    )
    optimum = evaluate_all(candidates, job, truth, result.objective, spec.trial_timeout_s, display)
    return replace(
        result,
        optimum=optimum,
        recommendation_true=true_choice(result.recommendation, candidates, job, truth),
    )
