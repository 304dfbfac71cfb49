"""One trial of a search, orchestrated in one place: launch intent recorded -> launch (trying the
candidate's placements) -> machines recorded -> wait -> set-up -> start -> poll -> fetch result ->
parse -> terminate (confirmed by a query) -> billed and recorded.

Every machine is written to the store right after launch and marked terminated only once the
provider confirms it, so a crash at any point leaves the store knowing what may still run.
Termination happens in ``finally``: a failed or cancelled trial leaves nothing running. Capacity is
not a measurement: a placement without machines is blocked for a while and the next is tried; a
candidate with no placement left is ``unavailable`` and tells the optimiser nothing about its
runtime.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cherrypick.errors import (
    CapacityError,
    CherrypickError,
    CredentialsError,
    ProvisioningError,
    QuotaError,
    RunnerError,
    Scope,
    WorkloadError,
)
from cherrypick.optimizer.base import Objective
from cherrypick.providers.base import (
    AnswersTrials,
    Candidate,
    ClusterInfo,
    Instance,
    InstanceState,
    LaunchRequest,
    Placement,
    Provider,
    ProvisionRecord,
    machine_tags,
)
from cherrypick.runners.base import Runner
from cherrypick.runners.ship import Package
from cherrypick.searching.display import Phase, TrialEvent
from cherrypick.searching.execution import Cancelled, ShellOutcome
from cherrypick.store import TrialRow, TrialStore
from cherrypick.trials import CandidateRecord, TrialStatus
from cherrypick.units import format_duration, job_cost
from cherrypick.workloads.base import TrialResult, Workload

__all__ = [
    "LiveMachines",
    "PlacementBlocks",
    "TrialContext",
    "TrialRunner",
    "with_known_host_key",
]

#: How long termination may take before the machine is recorded as ``unknown``.
TERMINATE_LIMIT_S = 600.0
#: Extra seconds a machine may live past the trial's limit (boot, set-up, collect, teardown).
LIFE_MARGIN_S = 1800.0


class LiveMachines:
    """The clusters launched and not yet terminated, by provider; shared by trial threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, tuple[Provider, ProvisionRecord]] = {}

    def add(self, provider: Provider, record: ProvisionRecord) -> None:
        with self._lock:
            self._live[record.cluster_name] = (provider, record)

    def discard(self, record: ProvisionRecord) -> None:
        with self._lock:
            self._live.pop(record.cluster_name, None)

    def snapshot(self) -> list[tuple[Provider, ProvisionRecord]]:
        with self._lock:
            return list(self._live.values())


class PlacementBlocks:
    """What launch errors ruled out, for the rest of the search (shared by trial threads).

    An error's scope (classified once, in its provider's module) says how far it reaches: a
    zone or a region for one instance type (no capacity there, a regional quota), the whole
    cloud for one instance type (a quota over all regions), or the whole cloud (credentials).
    An error without a scope blocks only the placement it came from.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._why: dict[tuple[str, str | None, str | None, str | None], str] = {}

    def block(
        self, provider: str, instance_type: str, placement: Placement, error: ProvisioningError
    ) -> None:
        scope = error.scope or Scope.ZONE
        if scope is Scope.RETRY:
            return
        zone = placement.zone if scope is Scope.ZONE else None
        region = None if scope is Scope.CLOUD else placement.region
        kind = None if isinstance(error, CredentialsError) else instance_type
        with self._lock:
            self._why.setdefault((provider, kind, region, zone), _short(error))

    def blocked(self, provider: str, instance_type: str, placement: Placement) -> str | None:
        """Why ``instance_type`` cannot be launched in ``placement`` (None: nothing known)."""
        keys: list[tuple[str, str | None, str | None, str | None]] = [(provider, None, None, None)]
        for kind in (instance_type, None):
            keys += [(provider, kind, None, None), (provider, kind, placement.region, None)]
            keys.append((provider, kind, placement.region, placement.zone))
        with self._lock:
            return next((self._why[k] for k in keys if k in self._why), None)


def _short(error: ProvisioningError) -> str:
    what = type(error).__name__.removesuffix("Error").lower()
    return f"{what} ({error.code})" if error.code else what


@dataclass
class TrialContext:
    """What every trial of one search shares."""

    workload: Workload
    providers: Mapping[str, Provider]
    store: TrialStore
    search_tag: str
    owner: str
    timeout_s: float
    connect: Callable[[Instance], Runner]
    logs: Path
    events: Callable[[TrialEvent], None]
    alternatives: Callable[[Candidate], Sequence[Candidate]] = lambda c: (c,)
    ssh_public_key: Callable[[], str | None] = lambda: None
    package: Callable[[], Package | None] = lambda: None
    objective: Objective | None = None
    boot_limit_s: float = 600.0
    live: LiveMachines = field(default_factory=LiveMachines)
    blocks: PlacementBlocks = field(default_factory=PlacementBlocks)
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Launched:
    provider: Provider
    candidate: Candidate
    record: ProvisionRecord
    launched_at: float


class TrialRunner:
    """Runs one trial from start to stored row (see the module docstring)."""

    def __init__(self, context: TrialContext, trial_id: int, candidate: Candidate) -> None:
        self.context = context
        self.trial_id = trial_id
        self.candidate = candidate
        self.started = time.monotonic()
        self._price = candidate.price_per_hour
        self._launched_at: float | None = None
        self._terminate_started = 0.0
        self._launch_s = 0.0
        self._last_shown: tuple[Phase, str] | None = None
        self._name = CandidateRecord.of(candidate).describe()
        provider = context.providers[candidate.offering.provider]
        self._simulated = isinstance(provider, AnswersTrials)

    def run(self, asked_after: int | None = None) -> TrialRow:
        c = self.context
        c.store.start_trial(
            self.trial_id, self.candidate.key, CandidateRecord.of(self.candidate), asked_after
        )
        launched, why = self._launch()
        if launched is None and c.cancel.is_set():
            return self._stopped()
        if launched is None:
            return self._finish(TrialStatus.UNAVAILABLE, 0.0, why)
        outcome: ShellOutcome | None = None
        try:
            outcome = self._execute(launched)
        except Cancelled:
            pass
        except (ProvisioningError, RunnerError, WorkloadError) as exc:
            outcome = ShellOutcome(TrialResult(TrialStatus.ERROR, None, message=str(exc)))
        finally:
            ended, warning = self._terminate(launched)
        if outcome is None:
            return self._stopped()
        return self._record(launched, outcome, ended, warning)

    def _stopped(self) -> TrialRow:
        """The search was stopped during this trial: its machines are gone, and the trial stays
        unfinished in the store, so that ``--resume`` runs it again (it measured nothing)."""
        self._event(Phase.DONE, "stopped: --resume runs it again")
        return self.context.store.trial(self.trial_id)

    # -- launch -------------------------------------------------------------------------------

    def _launch(self) -> tuple[_Launched | None, str]:
        """Try the candidate's placements in order; None (and why) if none had machines. When
        the machines are only held by the search's own trials, wait for them (at most the
        trial's limit)."""
        deadline = time.monotonic() + self.context.timeout_s
        while True:
            launched, why, retry = self._launch_once()
            if launched is not None or retry is None or time.monotonic() > deadline:
                return launched, why
            self._event(Phase.LAUNCHING, "waiting for machines other trials hold")
            if self.context.cancel.wait(retry):
                return None, "cancelled while waiting for machines"

    def _launch_once(self) -> tuple[_Launched | None, str, float | None]:
        reasons: list[str] = []
        retries: list[float] = []
        blocks = self.context.blocks
        for attempt, (provider, candidate, placement) in enumerate(self._placements()):
            instance_type = candidate.offering.instance_type
            why = blocks.blocked(provider.name, instance_type, placement) or self._short_of_quota(
                provider, candidate, placement
            )
            if why is not None:
                reasons.append(f"{placement.describe()}: {why}")
                continue
            self._event(Phase.LAUNCHING, placement.describe())
            try:
                record = self._try_launch(provider, candidate, placement, attempt)
            except ProvisioningError as exc:
                if isinstance(exc, CapacityError) and exc.retry_s is not None:
                    reasons.append(f"{placement.describe()}: {exc}")
                    retries.append(exc.retry_s)
                    continue
                blocks.block(provider.name, instance_type, placement, exc)
                kind = "no capacity" if isinstance(exc, CapacityError) else "cannot launch"
                reasons.append(f"{placement.describe()}: {kind} ({exc})")
                if isinstance(exc, CredentialsError):
                    raise
                continue
            return _Launched(provider, candidate, record, self._launched_at or 0.0), "", None
        why = "no placement has machines: " + "; ".join(reasons)
        return None, why, min(retries) if retries else None

    def _short_of_quota(
        self, provider: Provider, candidate: Candidate, placement: Placement
    ) -> str | None:
        """Why the account's quota cannot hold the candidate there (the placement is skipped
        untried, and said so), or None."""
        try:
            shortfall = provider.quota_shortfall(candidate, placement)
        except CherrypickError:
            return None  # a quota that cannot be read is no reason to skip: the launch will tell
        if shortfall is None:
            return None
        self._event(Phase.LAUNCHING, f"skipped {placement.describe()}: {shortfall}")
        error = QuotaError(provider.name, shortfall, region=placement.region)
        self.context.blocks.block(provider.name, candidate.offering.instance_type, placement, error)
        return f"skipped: {shortfall}"

    def _placements(self) -> list[tuple[Provider, Candidate, Placement]]:
        found = []
        for candidate in self.context.alternatives(self.candidate):
            provider = self.context.providers[candidate.offering.provider]
            found += [(provider, candidate, p) for p in provider.placements(candidate)]
        return found

    def _try_launch(
        self, provider: Provider, candidate: Candidate, placement: Placement, attempt: int
    ) -> ProvisionRecord:
        c = self.context
        name = f"{c.search_tag}-t{self.trial_id}-a{attempt}"
        tags = machine_tags(c.search_tag, self.trial_id, c.owner)
        c.store.record_launch(
            name, self.trial_id, provider.name, placement.region, placement.zone, tags
        )
        life = c.timeout_s + c.boot_limit_s + LIFE_MARGIN_S
        request = LaunchRequest(candidate, placement, name, tags, life, c.ssh_public_key())
        self._launched_at = time.time()
        asked = time.monotonic()
        try:
            record = provider.run_instances(request)
        except ProvisioningError:
            c.store.set_launch_state(name, "failed")
            raise
        self._launch_s = time.monotonic() - asked
        c.live.add(provider, record)
        c.store.set_launch_state(name, "launched")
        machines = [Instance(provider.name, i, placement.region) for i in record.instance_ids]
        c.store.record_instances(
            self.trial_id, machines, "launching", launched_at=self._launched_at
        )
        self._price = candidate.price_per_hour
        return record

    # -- run ----------------------------------------------------------------------------------

    def _execute(self, launched: _Launched) -> ShellOutcome:
        c = self.context
        self._event(Phase.BOOTING, launched.record.placement.describe())
        waited = time.monotonic()
        cluster = launched.provider.wait_instances(launched.record, c.boot_limit_s)
        boot_s = time.monotonic() - waited
        c.store.record_instances(self.trial_id, cluster.instances, "running")
        if isinstance(launched.provider, AnswersTrials):
            run = launched.provider.execute(
                self.candidate, cluster.instances, c.workload, c.timeout_s
            )
            seconds = {"boot": run.boot_s, "setup": run.setup_s, "run": run.run_s}
            return ShellOutcome(run.result, {**seconds, "billed_s": run.billed_s})
        outcome = self._execute_shell(cluster)
        outcome.seconds = {"launch": self._launch_s, "boot": boot_s, **outcome.seconds}
        return outcome

    def _execute_shell(self, cluster: ClusterInfo) -> ShellOutcome:
        from cherrypick.searching.execution import Execution, rendezvous_port

        c = self.context
        c.logs.mkdir(parents=True, exist_ok=True)
        with open(c.logs / f"trial-{self.trial_id}.log", "a", encoding="utf-8") as log:
            execution = Execution(
                workload=c.workload,
                candidate=self.candidate,
                cluster=cluster,
                connect=c.connect,
                package=c.package(),
                log=log,
                timeout_s=c.timeout_s,
                cancel=c.cancel,
                phase=lambda phase, detail: self._event(Phase(phase), detail),
                master_port=rendezvous_port(c.search_tag, self.trial_id),
                reached=lambda instance: c.store.mark_reached(instance.instance_id),
            )
            return execution.run()

    # -- teardown and record ------------------------------------------------------------------

    def _terminate(self, launched: _Launched) -> tuple[float, str]:
        """End the cluster and wait until the provider says it is gone; return when (the end
        of the bill) and a warning if it could not be confirmed."""
        c = self.context
        self._event(Phase.TERMINATING, "")
        self._terminate_started = time.monotonic()
        record = launched.record
        region, ids = record.placement.region, list(record.instance_ids)
        deadline = time.monotonic() + TERMINATE_LIMIT_S
        pause = 0.2
        warning = ""
        try:
            launched.provider.terminate_instances(region, ids)
            while True:
                states = launched.provider.query_instances(region, ids)
                if all(s == InstanceState.TERMINATED for s in states.values()):
                    break
                if time.monotonic() > deadline:
                    raise ProvisioningError(
                        launched.provider.name, f"still {states} after {TERMINATE_LIMIT_S:.0f} s"
                    )
                time.sleep(pause)
                pause = min(pause * 2, 10.0)
        except CherrypickError as exc:
            warning = f"termination not confirmed ({exc}); run cherrypick cleanup"
        ended = time.time()
        state = "unknown" if warning else "terminated"
        for instance_id in ids:
            c.store.set_instance_state(instance_id, state, at=ended)
        if not warning:
            c.store.set_launch_state(record.cluster_name, "terminated")
            c.live.discard(record)
        return ended, warning

    def _record(
        self, launched: _Launched, outcome: ShellOutcome, ended: float, warning: str
    ) -> TrialRow:
        result = outcome.result
        seconds = dict(outcome.seconds)
        simulated_bill = seconds.pop("billed_s", None)
        if simulated_bill is None:
            seconds["terminate"] = time.monotonic() - self._terminate_started
        if result.feasible:
            status = TrialStatus.OK
        else:
            status = TrialStatus.ERROR if result.status == TrialStatus.OK else result.status
        nodes = launched.candidate.nodes
        if simulated_bill is not None:
            billed = simulated_bill
        else:
            floor = launched.provider.minimum_billed_s
            billed = max(floor, ended - launched.launched_at)
        spend = job_cost(launched.candidate.offering.price_per_hour * nodes, billed)
        runtime = result.runtime_s if status == TrialStatus.OK else None
        cost = None if runtime is None else job_cost(self.candidate.price_per_hour, runtime)
        bill = {
            "machines": nodes,
            "billed_s_per_machine": billed,
            "placement": launched.record.placement.describe(),
            "offering": launched.candidate.offering.key,
            "machine_price_per_hour": launched.candidate.offering.price_per_hour,
            "spot": bool(launched.candidate.offering.extra.get("spot")),
            "catalog_retrieved": launched.candidate.offering.extra.get("retrieved"),
        }
        details = {
            **result.details,
            "trial_seconds": {**seconds, "billed_s": billed},
            "billing": bill,
        }
        message = "; ".join(m for m in (result.message, warning) if m)
        return self._finish(status, spend, message, runtime, cost, details)

    def _finish(
        self,
        status: TrialStatus,
        spend: float,
        message: str,
        runtime_s: float | None = None,
        cost_usd: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> TrialRow:
        store = self.context.store
        store.finish_trial(self.trial_id, status, runtime_s, cost_usd, spend, details, message)
        row = store.trial(self.trial_id)
        self._event(Phase.DONE, "", row)
        return row

    def _event(self, phase: Phase, detail: str, row: TrialRow | None = None) -> None:
        if phase != Phase.DONE and (self._simulated or (phase, detail) == self._last_shown):
            return  # nothing new (a display ticks the elapsed time itself), or simulated: no time
        self._last_shown = (phase, detail)
        elapsed = time.monotonic() - self.started
        billed = 0.0 if self._launched_at is None else time.time() - self._launched_at
        cost = job_cost(self._price, billed) if row is None else row.search_cost_usd or 0.0
        status, measured = (None, "") if row is None else self._verdict(row)
        event = TrialEvent(
            self.trial_id, self._name, phase, elapsed, cost, detail, status, measured
        )
        self.context.events(event)

    def _verdict(self, row: TrialRow) -> tuple[str, str]:
        """How a finished trial shows: ``late`` if it ran but missed the objective's limit."""
        if row.status != TrialStatus.OK or row.runtime_s is None or row.cost_usd is None:
            return str(row.status), row.message[:80]
        measured = f"{format_duration(row.runtime_s)} ${row.cost_usd:,.2f}"
        objective = self.context.objective
        late = objective is not None and not objective.feasible(row.runtime_s, row.cost_usd)
        return ("late" if late else "ok"), measured


def with_known_host_key(instance: Instance, store: TrialStore) -> Instance:
    """The instance with the host key it showed on first contact, if the store has one."""
    if instance.host_key is not None:
        return instance
    return dataclasses.replace(instance, host_key=store.host_key(instance.instance_id))
