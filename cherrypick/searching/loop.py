"""The search: the one place where strategy, providers, workload and store meet.

It keeps ``parallel`` trials in flight: whenever one finishes, the strategy is told what it
measured and asked for one more (the strategy knows which candidates are pending), until the stop
rule, the trial budget or the spend budget says stop. The spend budget is checked before each
launch, counting the trials in flight at their expected cost, so a parallel batch cannot overshoot
it. Every trial is written to the store as it finishes, with when it was asked and told.

Resuming replays the same decisions: the strategy is rebuilt from the same seed and candidates,
each stored trial is asked again after as many observations as it was first (``asked_after``) and
told in the order it was first (``tell_seq``), and a proposal whose trial finished is answered from
the store. Only trials that were in flight run again, after the machines the store lists as
possibly running are terminated (confirmed by the provider).

Ctrl-C or SIGTERM cancels the trials in flight at once; each terminates its machines; a second
Ctrl-C during that teardown says what is still running and how to clean it up, and waits on.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cherrypick.errors import (
    CherrypickError,
    HopelessJobError,
    InputError,
    SearchInterrupted,
    StoreError,
)
from cherrypick.optimizer import BayesianStrategy, StopRule, Strategy, make_strategy
from cherrypick.optimizer._spend import surest_untried
from cherrypick.optimizer.base import Observation
from cherrypick.providers.base import (
    TAG_SEARCH,
    AnswersTrials,
    Candidate,
    Instance,
    InstanceState,
    Provider,
)
from cherrypick.runners.base import Runner
from cherrypick.runners.ship import Package
from cherrypick.searching.display import Display, NullDisplay, SearchStatus, TrialEvent
from cherrypick.searching.outlook import Outlook, outlook, predicted_choice
from cherrypick.searching.preflight import refuse_hopeless
from cherrypick.searching.result import Choice, Preference, SearchResult
from cherrypick.searching.setup import (
    SearchSpace,
    build_problem,
    build_providers,
    build_space,
    build_workload,
    objective_of,
    search_tag,
)
from cherrypick.searching.trial import TrialContext, TrialRunner, with_known_host_key
from cherrypick.spec import SearchSpec, parse_spec
from cherrypick.store import TrialRow, TrialStore
from cherrypick.trials import TrialStatus
from cherrypick.units import format_duration, job_cost, plural
from cherrypick.workloads.base import Workload

__all__ = ["Search", "run_search"]

#: How many runners-up a result lists.
RUNNERS_UP = 3
#: How often a running search says it is alive (``cherrypick cleanup`` spares it meanwhile).
HEARTBEAT_S = 30.0
#: A trial's expected length before any trial finished, for the spend budget.
FIRST_TRIAL_GUESS_S = 900.0


@dataclass(frozen=True)
class _InFlight:
    trial_id: int
    expected_usd: float
    simulated_start: float


@dataclass
class _Progress:
    trials: int = 0
    spend: float = 0.0
    asked: int = 0
    #: Each trial in flight: its id, its expected cost, and when it started on the simulated
    #: clock (the seconds simulated trials took, summed along each slot).
    in_flight: dict[Future[TrialRow], _InFlight] = field(default_factory=dict)
    simulated_now: float = 0.0
    billed: list[float] = field(default_factory=list)


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
        force: bool = False,
    ) -> None:
        self.spec = spec
        self.force = force
        self.space = space
        self.candidates = space.candidates
        self.objective = objective_of(spec)
        self.providers = providers
        self.store = store
        self.display: Display = display if display is not None else NullDisplay()
        self.identity = dict(identity if identity is not None else spec.identity())
        self._index = {c.key: i for i, c in enumerate(self.candidates)}
        self._simulated = all(isinstance(p, AnswersTrials) for p in providers.values())
        self._workload = workload
        self._keys = _SearchKeys(Path(f"{store.path}.keys"), providers)
        self.tag = search_tag(self.identity, spec.seed)
        self.context = TrialContext(
            workload=workload,
            providers=providers,
            store=store,
            search_tag=self.tag,
            owner=_owner(),
            timeout_s=spec.trial_timeout_s,
            connect=self._connect,
            logs=Path(f"{store.path}.logs"),
            events=self._on_event,
            alternatives=_alternatives(space),
            ssh_public_key=self._keys.public,
            package=_PackageOnce().get,
            objective=self.objective,
            boot_limit_s=spec.connect_limit_s,
        )

    def run(self) -> SearchResult:
        strategy = self._strategy()
        if not self.store.has_search():  # a resumed search was let through
            if not self.force:
                refuse_hopeless(strategy, self.candidates, self.spec.stop.min_chance)
            view = outlook(
                strategy, self.candidates, self.spec.budget.max_trials, self.spec.stop.within
            )
            for line in view.lines:
                self.display.message(line)
            if view.skip is not None:
                return self._untried(view)
        stored = self._open()
        progress = _Progress()
        beat = _Heartbeat(self.store, self.context.owner)
        pool = ThreadPoolExecutor(self.spec.parallel, thread_name_prefix="trial")
        try:
            reason = self._loop(strategy, stored, progress, pool)
        except KeyboardInterrupt:
            self._cancel(progress)
            self.store.finish("interrupted", None)
            raise SearchInterrupted(
                f"search interrupted after {progress.trials} trials; machines terminated, resume"
                f" with --resume {self.store.path}"
            ) from None
        except BaseException:
            self._cancel(progress)
            self.store.finish("failed", None)
            raise
        finally:
            pool.shutdown(wait=True)
            beat.stop()
            self._terminate_all()
            self._keys.delete()
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
        self.store.heartbeat(self.context.owner)
        self._keys.delete()  # a crashed run's key: this run makes its own
        self._terminate_stored(announce=True)
        return {row.trial_id: row for row in self.store.finished_trials()}

    def _strategy(self) -> Strategy:
        stop = self.spec.stop
        prior = self._workload if self.spec.prior == "performance-model" else None
        problem = build_problem(self.space, self.objective, prior, self._workload)
        rule = StopRule(
            stop.ei_fraction,
            stop.min_trials,
            stop.min_chance,
            stop.within,
            stop.confidence,
            stop.cost_aware,
        )
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

    # -- the loop -----------------------------------------------------------------------------

    def _loop(
        self,
        strategy: Strategy,
        stored: dict[int, TrialRow],
        progress: _Progress,
        pool: ThreadPoolExecutor,
    ) -> str:
        self._replay(strategy, stored, progress, pool)
        while True:
            reason = self._fill(strategy, progress, pool)
            if not progress.in_flight:
                return reason or _stop_reason(strategy)
            self._tell_one(strategy, progress)

    def _fill(
        self, strategy: Strategy, progress: _Progress, pool: ThreadPoolExecutor
    ) -> str | None:
        """Ask for trials until ``parallel`` are in flight; why it stopped asking, if it did."""
        budget = self.spec.budget
        while len(progress.in_flight) < self.spec.parallel:
            if strategy.should_stop():
                return None
            if progress.asked >= budget.max_trials:
                return "trial budget"
            indices = strategy.ask(1)
            if not indices:
                return "no candidates left"
            candidate = self.candidates[indices[0]]
            expected = self._expected_cost(candidate, progress)
            limit = budget.max_search_usd
            committed = progress.spend + sum(f.expected_usd for f in progress.in_flight.values())
            if limit is not None and committed + expected > limit:
                strategy.withdraw(indices[0])
                return "search budget"
            self._submit(pool, progress, progress.asked, candidate, progress.trials, expected)
            progress.asked += 1
        return None

    def _submit(
        self,
        pool: ThreadPoolExecutor,
        progress: _Progress,
        trial_id: int,
        candidate: Candidate,
        asked_after: int,
        expected: float,
    ) -> None:
        runner = TrialRunner(self.context, trial_id, candidate)
        future = pool.submit(runner.run, asked_after)
        progress.in_flight[future] = _InFlight(trial_id, expected, progress.simulated_now)

    def _tell_one(self, strategy: Strategy, progress: _Progress) -> None:
        """Wait for the next trial in flight to finish and tell the strategy.

        Simulated trials end in no time, in whatever order the threads get to them; so that a
        dry run is deterministic (and refills as a real one would), they are told in the order
        they end on the simulated clock instead.
        """
        if self._simulated:
            wait(list(progress.in_flight))
            first = min(progress.in_flight.items(), key=lambda item: _simulated_end(*item))
            progress.simulated_now = _simulated_end(*first)[0]
            done = {first[0]}
        else:
            done, _ = wait(list(progress.in_flight), return_when=FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: progress.in_flight[f].trial_id):
            progress.in_flight.pop(future)
            self._tell(strategy, future.result(), progress)

    def _tell(self, strategy: Strategy, row: TrialRow, progress: _Progress) -> None:
        index = self._index[row.candidate_key]
        if row.status in (TrialStatus.UNAVAILABLE, TrialStatus.CANCELLED):
            strategy.exclude(index)
        else:
            strategy.tell(self._observation(row))
        self.store.set_told(row.trial_id, progress.trials)
        progress.trials += 1
        progress.spend += row.search_cost_usd or 0.0
        if row.result and "trial_seconds" in row.result:
            progress.billed.append(_billed_s(row))
        self._show(strategy, progress)

    def _expected_cost(self, candidate: Candidate, progress: _Progress) -> float:
        """What a trial of ``candidate`` is expected to cost: its price for as long as trials
        have taken so far (before any: the smaller of the trial limit and a quarter hour)."""
        if progress.billed:
            seconds = sum(progress.billed) / len(progress.billed)
        else:
            seconds = min(self.spec.trial_timeout_s, FIRST_TRIAL_GUESS_S)
        return job_cost(candidate.price_per_hour, seconds)

    # -- resuming -----------------------------------------------------------------------------

    def _replay(
        self,
        strategy: Strategy,
        stored: dict[int, TrialRow],
        progress: _Progress,
        pool: ThreadPoolExecutor,
    ) -> None:
        """Ask and tell as the interrupted run did, up to where it stopped (module docstring)."""
        order = self.store.replay_order()
        asked_after = {t: _asked_after(t, a, self.spec.parallel) for t, a, _ in order}
        # A store of an older version kept neither: it told in trial order, batch by batch.
        told = {t: t if seq is None else seq for t, a, seq in order if a is None or seq is not None}
        tells = sorted(
            (r for r in stored.values() if r.trial_id in told), key=lambda r: told[r.trial_id]
        )
        starts: dict[int, float] = {}  # on the simulated clock, as the interrupted run had them
        while True:
            t = progress.asked
            if t in asked_after and asked_after[t] <= progress.trials:
                starts[t] = progress.simulated_now
                self._ask_again(strategy, t, stored, progress, pool)
            elif tells and tells[0].trial_id < progress.asked:
                row = tells.pop(0)
                progress.simulated_now = starts[row.trial_id] + _billed_s(row)
                self._tell(strategy, row, progress)
            else:
                break
        # Finished but never told (the run stopped in between): they are in flight again, done,
        # and the loop tells them when the interrupted run would have.
        for row in stored.values():
            if row.trial_id not in told and row.trial_id in starts:
                done: Future[TrialRow] = Future()
                done.set_result(row)
                progress.in_flight[done] = _InFlight(row.trial_id, 0.0, starts[row.trial_id])

    def _ask_again(
        self,
        strategy: Strategy,
        trial_id: int,
        stored: dict[int, TrialRow],
        progress: _Progress,
        pool: ThreadPoolExecutor,
    ) -> None:
        (index,) = strategy.ask(1)
        candidate = self.candidates[index]
        row = stored.get(trial_id) or self.store.trial(trial_id)
        if row.candidate_key != candidate.key:
            raise StoreError(
                f"{self.store.path}: trial {trial_id} ran {row.candidate_key} but the resumed"
                f" search proposes {candidate.key}; the catalog or cherrypick changed since"
            )
        if trial_id not in stored:  # in flight when the search stopped: run it again
            expected = self._expected_cost(candidate, progress)
            self._submit(pool, progress, trial_id, candidate, progress.trials, expected)
        progress.asked += 1

    # -- observations and display -------------------------------------------------------------

    def _observation(self, row: TrialRow) -> Observation:
        # A timeout, crash or OOM is infeasible: the strategy never proposes it again and
        # imputes it as slow. (Capacity is not a measurement: see _tell.)
        index = self._index[row.candidate_key]
        if row.status == TrialStatus.OK:
            return Observation(index, row.runtime_s, True, row.cost_usd)
        return Observation(index, None, False)

    def _on_event(self, event: TrialEvent) -> None:
        self.display.trial(event)

    def _show(self, strategy: Strategy, progress: _Progress) -> None:
        best = strategy.best()
        best_text = (
            "none yet"
            if best is None
            else f"${best.cost_usd:,.2f} {format_duration(best.runtime_s)}"
            f" {self.candidates[best.index].key}"
        )
        budget = self.spec.budget
        self.display.search(
            SearchStatus(
                best=best_text,
                spent_usd=progress.spend,
                budget_usd=budget.max_search_usd,
                trials_done=progress.trials,
                trials_left=max(budget.max_trials - progress.asked, 0),
            )
        )

    def _untried(self, view: Outlook) -> SearchResult:
        """The model's pick without a trial, stored as this search's result."""
        self._open()
        result = SearchResult(
            objective=self.objective,
            recommendation=view.pick,
            runners_up=(),
            trials_used=0,
            search_cost_usd=0.0,
            stopped_because=f"{view.skip}: the performance model's pick, untried",
            remaining_improvement=None,
            within=self.spec.stop.within,
            confidence=view.confidence,
            rows=(),
            store_path=str(self.store.path),
        )
        self.store.finish("finished", result.to_json())
        return result

    def _result(self, strategy: Strategy, progress: _Progress, reason: str) -> SearchResult:
        rows = self.store.trials()
        by_index = {self._index[r.candidate_key]: r for r in rows if r.candidate_key in self._index}
        ranked = _ranked(strategy, by_index)
        confidence = _confidence(strategy, self.spec.stop.within)
        pick = _untried_pick(strategy, self.candidates, self.spec.stop.within, confidence)
        preference, tried = _preference(strategy, by_index), None
        if pick is not None:
            tried, preference = confidence, None
            ranked, confidence = [pick[0], *ranked], pick[1]
        return SearchResult(
            objective=self.objective,
            recommendation=ranked[0] if ranked else None,
            runners_up=tuple(ranked[1 : 1 + RUNNERS_UP]),
            trials_used=progress.trials,
            search_cost_usd=progress.spend,
            stopped_because=reason,
            remaining_improvement=_remaining(strategy),
            within=self.spec.stop.within,
            confidence=confidence,
            rows=tuple(rows),
            store_path=str(self.store.path),
            preference=preference,
            tried_confidence=tried,
        )

    # -- machines -----------------------------------------------------------------------------

    def _connect(self, instance: Instance) -> Runner:
        from cherrypick.runners import runner_for

        known = with_known_host_key(instance, self.store)
        return runner_for(
            known,
            key_file=self._keys.private_path(),
            on_new_host_key=lambda key: self.store.remember_host_key(instance.instance_id, key),
            connect_limit_s=self.context.boot_limit_s,
        )

    def _cancel(self, progress: _Progress) -> None:
        """Stop the trials in flight now and wait while they terminate their machines."""
        self.context.cancel.set()
        pending = set(progress.in_flight)
        interrupts = 0
        while pending:
            try:
                _, pending = wait(pending, timeout=1.0)
            except KeyboardInterrupt:
                interrupts += 1
                self.display.message(self._still_running(interrupts))

    def _still_running(self, interrupts: int) -> str:
        live = self.context.live.snapshot()
        names = ", ".join(
            f"{provider.name} {', '.join(record.instance_ids)}" for provider, record in live
        )
        return (
            f"terminating the machines of the trials in flight ({names or 'none left'});"
            f" if you stop cherrypick now, run: cherrypick cleanup --store {self.store.path}"
            + (" (press Ctrl-C again to wait on)" if interrupts == 1 else "")
        )

    def _terminate_stored(self, announce: bool = False) -> None:
        """Machines the store says may still run (a crashed earlier run): terminate them, and
        mark them terminated only once their provider confirms it."""
        by_provider: dict[tuple[str, str], list[str]] = {}
        for row in self.store.live_instances():
            by_provider.setdefault((row.provider, row.region), []).append(row.instance_id)
        for launch in self.store.open_launches():
            provider = self.providers.get(launch.provider)
            try:
                found = [] if provider is None else provider.list_launched(launch.tags)
            except CherrypickError as exc:
                self.display.message(f"cannot list {launch.provider}'s machines: {exc}")
                found = []
            for machine in found:
                ids = by_provider.setdefault((launch.provider, machine.region), [])
                if machine.instance_id not in ids:
                    ids.append(machine.instance_id)
        for (name, region), ids in by_provider.items():
            self._terminate_confirmed(name, region, ids, announce)
        for launch in self.store.open_launches():
            if launch.provider in self.providers:
                self.store.set_launch_state(launch.cluster_name, "terminated")

    def _terminate_confirmed(
        self, name: str, region: str, ids: Sequence[str], announce: bool
    ) -> None:
        provider = self.providers.get(name)
        if provider is None:
            self.display.message(
                f"the store lists machines on {name} ({', '.join(ids)}) that this search has no"
                f" provider for; run: cherrypick cleanup --store {self.store.path}"
            )
            return
        try:
            provider.terminate_instances(region, ids)
            states = provider.query_instances(region, ids)
        except CherrypickError as exc:
            self.display.message(
                f"cannot terminate {', '.join(ids)} on {name}: {exc}; to retry: cherrypick"
                f" cleanup --store {self.store.path}"
            )
            return
        gone = [i for i, s in states.items() if s == InstanceState.TERMINATED]
        for instance_id in gone:
            self.store.set_instance_state(instance_id, "terminated")
        left = sorted(set(ids) - set(gone))
        if announce and gone:
            self.display.message(
                f"terminated {len(gone)} machine(s) a stopped run left on {name}: {', '.join(gone)}"
            )
        if left:
            self.display.message(f"still terminating on {name}: {', '.join(left)}")

    def _terminate_all(self) -> None:
        """End everything the search still holds; what cannot be ended is said, not raised
        (the search's own outcome matters more, and cleanup can finish the job)."""
        for provider, record in self.context.live.snapshot():
            region, ids = record.placement.region, list(record.instance_ids)
            self._try_end(provider, region, ids)
            self.context.live.discard(record)
        for provider in {id(p): p for p in self.providers.values()}.values():
            try:
                leftovers = list(provider.list_launched({TAG_SEARCH: self.tag}))
            except CherrypickError as exc:
                self.display.message(f"cannot list {provider.name}'s machines: {exc}")
                continue
            for machine in leftovers:
                self._try_end(provider, machine.region, [machine.instance_id])
        self._terminate_stored()
        self._cleanup_search()

    def _cleanup_search(self) -> None:
        """Delete what the providers made for the search besides machines (key pairs, security
        groups, firewall rules), now that its machines are gone."""
        for provider in {id(p): p for p in self.providers.values()}.values():
            try:
                provider.cleanup_search(self.tag)
            except CherrypickError as exc:
                self.display.message(
                    f"cannot delete {provider.name}'s resources of this search ({exc}); to retry:"
                    f" cherrypick cleanup --store {self.store.path}"
                )

    def _try_end(self, provider: Provider, region: str, ids: list[str]) -> None:
        try:
            provider.terminate_instances(region, ids)
        except CherrypickError as exc:
            self.display.message(f"{exc}; to retry: cherrypick cleanup --store {self.store.path}")


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
    if isinstance(strategy, BayesianStrategy) and strategy.no_trial_pays():  # cost_aware only
        return (
            "no untried configuration is expected to save more on the job than its trial costs"
            f" (after {plural(len(strategy.observations), 'trial')})"
        )
    rule = strategy.stop_rule
    assert rule is not None  # with candidates left, only the rule stops a search
    if rule.confidence is not None:
        return (
            f"stop rule: P(within {rule.within:.0%}) reached {rule.confidence:.0%}"
            f" after {len(strategy.observations)} trials"
        )
    return (
        f"stop rule: the best expected improvement is below {rule.ei_fraction:.0%} of the best"
        f" after {len(strategy.observations)} trials"
    )


def _untried_pick(
    strategy: Strategy, candidates: Sequence[Candidate], within: float, tried: float | None
) -> tuple[Choice, float] | None:
    """A cost-aware search with a prior may recommend a configuration it has not tried: the
    untried one the model is surest is within ``within`` of the best, where it is surer of it
    than of the best tried (``tried``), so that no dear trial is needed to recommend it."""
    rule = strategy.stop_rule
    if not isinstance(strategy, BayesianStrategy) or rule is None or not rule.cost_aware:
        return None
    found = surest_untried(strategy, within)
    if found is None or (tried is not None and found[1] <= tried):
        return None
    return predicted_choice(strategy, candidates, found[0]), found[1]


def _remaining(strategy: Strategy) -> float | None:
    best = strategy.best()
    if not isinstance(strategy, BayesianStrategy) or best is None or not len(strategy.untried()):
        return None
    scores = strategy.scores()
    value = strategy.problem.objective.value(best.runtime_s, best.cost_usd)
    return float(scores.saving.max()) / value


def _preference(strategy: Strategy, by_index: Mapping[int, TrialRow]) -> Preference | None:
    """Why the strategy recommends another run than the best measured one (None if it does
    not, or has no model to say why)."""
    rec, best = strategy.recommend(), strategy.best()
    if rec is None or best is None or rec.index == best.index:
        return None
    believed = strategy.believed() if isinstance(strategy, BayesianStrategy) else {}
    if rec.index not in believed or best.index not in believed:
        return None
    value = strategy.problem.objective.value
    return Preference(
        measured_best=by_index[best.index].trial_id,
        measured=value(best.runtime_s, best.cost_usd),
        believed=believed[best.index],
        recommendation_measured=value(rec.runtime_s, rec.cost_usd),
        recommendation_believed=believed[rec.index],
    )


def _confidence(strategy: Strategy, within: float) -> float | None:
    if not isinstance(strategy, BayesianStrategy):
        return None
    return strategy.confidence(within)


def _billed_s(row: TrialRow) -> float:
    seconds = ((row.result or {}).get("trial_seconds") or {}).get("billed_s")
    return float(seconds) if isinstance(seconds, int | float) else 0.0


def _simulated_end(future: Future[TrialRow], flight: _InFlight) -> tuple[float, int]:
    """When a finished simulated trial ended on the simulated clock (ties: by trial id)."""
    return flight.simulated_start + _billed_s(future.result()), flight.trial_id


def _asked_after(trial_id: int, stored: int | None, parallel: int) -> int:
    """When a trial was asked; a store of an older version ran whole batches of ``parallel``."""
    return stored if stored is not None else (trial_id // parallel) * parallel


def _alternatives(space: SearchSpace) -> Callable[[Candidate], list[Candidate]]:
    """Each candidate's placements: itself first, then the same hardware elsewhere, cheapest
    first (the search space keeps only the cheapest of each)."""
    same: dict[tuple[str, str, int], list[Candidate]] = {}
    for c in space.catalog:
        same.setdefault((c.offering.provider, c.offering.instance_type, c.nodes), []).append(c)

    def alternatives(candidate: Candidate) -> list[Candidate]:
        o = candidate.offering
        others = same.get((o.provider, o.instance_type, candidate.nodes), [])
        rest = sorted((c for c in others if c != candidate), key=lambda c: c.price_per_hour)
        return [candidate, *rest]

    return alternatives


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Heartbeat:
    """Beats in the store every HEARTBEAT_S seconds from a daemon thread until stopped."""

    def __init__(self, store: TrialStore, owner: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(store, owner), name="heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self, store: TrialStore, owner: str) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                store.heartbeat(owner)
            except CherrypickError:
                return

    def stop(self) -> None:
        self._stop.set()


class _PackageOnce:
    """The wheel of this controller's code, built on first use (only real machines need it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._package: Package | None = None

    def get(self) -> Package:
        with self._lock:
            if self._package is None:
                cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                self._package = Package.of_controller(cache / "cherrypick" / "wheels")
            return self._package


class _SearchKeys:
    """The search's ephemeral SSH key, made on first use by a provider that puts keys on fresh
    machines (``needs_ssh_key``), and deleted when the run ends."""

    def __init__(self, directory: Path, providers: Mapping[str, Provider]) -> None:
        self.directory = directory
        self.needed = any(getattr(p, "needs_ssh_key", False) for p in providers.values())
        self._lock = threading.Lock()
        self._key: Any = None

    def _get(self) -> Any:
        from cherrypick.runners.keys import SearchKey

        with self._lock:
            if self._key is None and self.needed:
                self._key = SearchKey.create(self.directory)
            return self._key

    def public(self) -> str | None:
        key = self._get()
        return None if key is None else str(key.public_openssh)

    def private_path(self) -> str | None:
        key = self._get()
        return None if key is None else str(key.private_path)

    def delete(self) -> None:
        with self._lock:
            if self._key is not None:
                self._key.delete()
                self._key = None
            elif self.directory.exists():
                from cherrypick.runners.keys import SearchKey

                stale = SearchKey.load(self.directory)
                if stale is not None:
                    stale.delete()


def run_search(
    spec: SearchSpec,
    *,
    dry_run: bool,
    store_path: Path | str | None = None,
    workload: Workload | None = None,
    providers: Mapping[str, Provider] | None = None,
    display: Display | None = None,
    space: SearchSpace | None = None,
    force: bool = False,
) -> SearchResult:
    """Run (or resume, if the store holds it) the search ``spec`` describes.

    ``workload`` and ``providers`` override what the spec names (the Python API passes objects);
    ``space`` one the caller built already from the same spec (the dry-run benchmark does);
    ``force``: search even when the performance model says no candidate can do the job.
    """
    space = space if space is not None else build_space(spec)
    job = workload if workload is not None else build_workload(spec)
    identity = {**spec.identity(), "dry_run": dry_run}
    path = Path(store_path if store_path is not None else spec.store)
    existed = path.exists()
    try:
        with TrialStore(path) as store:
            clouds = (
                providers
                if providers is not None
                else build_providers(space, dry_run, spec, store=store)
            )
            return Search(spec, space, job, clouds, store, display, identity, force).run()
    except (HopelessJobError, InputError):
        if not existed and not _holds_search(path):  # refused before it began: no store left
            path.unlink(missing_ok=True)
        raise


def _holds_search(path: Path) -> bool:
    if not path.exists():
        return False
    with TrialStore(path) as store:
        return store.has_search()
