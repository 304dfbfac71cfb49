"""The search: the one place where strategy, providers, workload and store meet.

Each step asks the strategy for ``parallel`` candidates, runs them as trials (launch, wait, run,
collect, terminate), tells the strategy what they measured, and stops on the strategy's stop rule,
the trial budget or the spend budget. Every trial is written to the store as it finishes.

Resuming replays the same decisions: the strategy is rebuilt from the same seed and candidate
list, and each proposal whose trial id already finished in the store is answered from the store
instead of being run. Proposals depend only on the seed and the observations told so far, so the
resumed search proposes exactly what the uninterrupted one did; only trials that were in flight
run again.

"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cherrypick.errors import CherrypickError, SearchInterrupted, StoreError
from cherrypick.optimizer import BayesianStrategy, StopRule, Strategy, make_strategy
from cherrypick.optimizer.base import Observation
from cherrypick.providers.base import Instance, Provider
from cherrypick.searching.result import Choice, SearchResult
from cherrypick.searching.setup import (
    SearchSpace,
    build_problem,
    build_providers,
    build_space,
    build_workload,
    objective_of,
    search_tag,
)
from cherrypick.searching.trial import LiveInstances, TrialRunner
from cherrypick.spec import SearchSpec, parse_spec
from cherrypick.store import TrialRow, TrialStore
from cherrypick.trials import TrialStatus
from cherrypick.units import format_duration
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
    """One search over ``space``; :meth:`run` starts or resumes it in ``store``."""

    def __init__(
        self,
        spec: SearchSpec,
        space: SearchSpace,
        workload: Workload,
        providers: Mapping[str, Provider],
        store: TrialStore,
        display: Display | None = None,
        identity: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.space = space
        self.candidates = space.candidates
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
        problem = build_problem(self.space, self.objective, prior)
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
            for row in self._batch(progress.trials, indices, stored):
                strategy.tell(self._observation(row))
                progress.trials += 1
                progress.spend += row.search_cost_usd or 0.0
                self._show(row, strategy, progress)
            if strategy.should_stop():
                return _stop_reason(strategy)

    def _batch(
        self, first_id: int, indices: list[int], stored: dict[int, TrialRow]
    ) -> list[TrialRow]:
        jobs = list(enumerate(indices, start=first_id))
        replayed = [self._replay(stored[t], i) for t, i in jobs if t in stored]
        to_run = [(t, self.candidates[i]) for t, i in jobs if t not in stored]
        if len(to_run) <= 1:
            ran = [self._runner.run(t, c) for t, c in to_run]
        else:
            with ThreadPoolExecutor(len(to_run)) as pool:
                futures = [pool.submit(self._runner.run, t, c) for t, c in to_run]
                ran = [f.result() for f in futures]
        return sorted([*replayed, *ran], key=lambda row: row.trial_id)

    def _replay(self, row: TrialRow, index: int) -> TrialRow:
        proposed = self.candidates[index].key
        if row.candidate_key != proposed:
            raise StoreError(
                f"{self.store.path}: trial {row.trial_id} ran {row.candidate_key} but the resumed"
                f" search proposes {proposed}; the catalog or cherrypick changed since"
            )
        return row

    def _observation(self, row: TrialRow) -> Observation:
        # A timeout, crash, OOM or capacity failure is infeasible: the strategy never proposes
        # it again and imputes it as slow (capacity is not the machine's fault, but a search
        # cannot use a configuration it cannot get either).
        index = self._index[row.candidate_key]
        if row.status == TrialStatus.OK:
            return Observation(index, row.runtime_s, True, row.cost_usd)
        return Observation(index, None, False)

    def _show(self, row: TrialRow, strategy: Strategy, progress: _Progress) -> None:
        if self.display is None:
            return
        measured = (
            f"{format_duration(row.runtime_s)} ${row.cost_usd:,.2f}"
            if row.runtime_s is not None and row.cost_usd is not None
            else row.message[:60]
        )
        best = strategy.best()
        best_text = (
            "none yet"
            if best is None
            else f"${best.cost_usd:,.2f} {format_duration(best.runtime_s)}"
        )
        self.display(
            f"trial {row.trial_id:>3}  {row.candidate.describe():<60} {row.status:<9}"
            f" {measured:<22} best {best_text}  (spent ${progress.spend:,.2f})"
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
            *objective.rank_key(r.runtime_s, r.cost_usd),
        ),
    )
    return [Choice.of_trial(by_index[r.index]) for r in order if r.index in by_index]


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
    space: SearchSpace | None = None,
) -> SearchResult:
    """Run (or resume, if the store holds it) the search ``spec`` describes.

    ``workload`` and ``providers`` override what the spec names (the Python API passes objects);
    ``space`` one the caller built already from the same spec (the dry-run benchmark does).
    """
    space = space if space is not None else build_space(spec)
    job = workload if workload is not None else build_workload(spec)
    clouds = providers if providers is not None else build_providers(space, dry_run, spec)
    identity = {**spec.identity(), "dry_run": dry_run}
    path = Path(store_path if store_path is not None else spec.store)
    with TrialStore(path) as store:
        return Search(spec, space, job, clouds, store, display, identity).run()
