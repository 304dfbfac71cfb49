"""One trial of a search: launch, wait, run, collect, terminate, bill. Private to the search.

Every machine is written to the store right after launch and marked terminated right after
termination, so a crash at any point leaves the store knowing what may still run. Termination
happens in ``finally``: a failed or interrupted trial leaves nothing running.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cherrypick.errors import CapacityError, ProvisioningError, WorkloadError
from cherrypick.optimizer.base import Observation
from cherrypick.providers.base import Candidate, Instance, Provider, TrialRun
from cherrypick.store import TrialRow, TrialStore
from cherrypick.workloads.base import Workload

__all__ = ["LiveInstances", "TrialOutcome", "TrialRunner", "candidate_record"]

#: Launch attempts before a trial is given up as ``cancelled`` (the cloud had no capacity).
LAUNCH_ATTEMPTS = 3
#: What a machine that booted but failed is billed: the clouds' per-second minimum.
MINIMUM_BILLED_S = 60.0


def candidate_record(candidate: Candidate) -> dict[str, Any]:
    """The flat description of a candidate the store and reports use."""
    o = candidate.offering
    return {
        "provider": o.provider,
        "region": o.region,
        "instance_type": o.instance_type,
        "gpu": o.gpu,
        "gpus_per_node": o.gpus_per_node,
        "nodes": candidate.nodes,
        "price_per_hour": candidate.price_per_hour,
    }


@dataclass(frozen=True)
class TrialOutcome:
    """What one trial measured, and what it cost the search (``search_cost_usd``)."""

    trial_id: int
    index: int
    candidate: dict[str, Any]
    status: str
    runtime_s: float | None
    cost_usd: float | None
    search_cost_usd: float
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def observation(self) -> Observation:
        # A timeout, crash, OOM or capacity failure is infeasible: the strategy never proposes
        # it again and imputes it as slow (capacity is not the machine's fault, but a search
        # cannot use a configuration it cannot get either).
        if self.ok:
            return Observation(self.index, self.runtime_s, True, self.cost_usd)
        return Observation(self.index, None, False)

    @classmethod
    def from_row(cls, row: TrialRow, index: int) -> TrialOutcome:
        return cls(
            row.trial_id,
            index,
            row.candidate,
            row.status,
            row.runtime_s,
            row.cost_usd,
            row.search_cost_usd or 0.0,
            row.message,
        )


class LiveInstances:
    """The machines launched and not yet terminated, by provider; shared by trial threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, tuple[Provider, Instance]] = {}

    def add(self, provider: Provider, instances: Sequence[Instance]) -> None:
        with self._lock:
            self._live.update({i.instance_id: (provider, i) for i in instances})

    def discard(self, instances: Sequence[Instance]) -> None:
        with self._lock:
            for i in instances:
                self._live.pop(i.instance_id, None)

    def snapshot(self) -> list[tuple[Provider, Instance]]:
        with self._lock:
            return list(self._live.values())


@dataclass(frozen=True)
class TrialRunner:
    """Runs trials of one workload through the providers, recording them in the store."""

    workload: Workload
    providers: Mapping[str, Provider]
    store: TrialStore
    tag: str
    timeout_s: float
    live: LiveInstances

    def run(self, trial_id: int, index: int, candidate: Candidate) -> TrialOutcome:
        record = candidate_record(candidate)
        self.store.start_trial(trial_id, candidate.key, record)
        provider = self.providers[candidate.offering.provider]
        try:
            instances = self._launch(provider, candidate, trial_id)
        except ProvisioningError as exc:
            return self._finish(trial_id, index, record, "cancelled", None, 0.0, str(exc))
        try:
            run = self._execute(provider, candidate, instances, trial_id)
        except (ProvisioningError, WorkloadError) as exc:
            spend = candidate.price_per_hour * MINIMUM_BILLED_S / 3600.0
            return self._finish(trial_id, index, record, "error", None, spend, str(exc))
        finally:
            self._terminate(provider, instances)
        return self._record_run(trial_id, index, candidate, record, run)

    def _launch(self, provider: Provider, candidate: Candidate, trial_id: int) -> list[Instance]:
        for attempt in range(1, LAUNCH_ATTEMPTS + 1):
            try:
                instances = list(provider.launch(candidate, self.tag))
            except CapacityError:
                if attempt == LAUNCH_ATTEMPTS:
                    raise
                continue
            self.live.add(provider, instances)
            self.store.record_instances(trial_id, instances, "launching")
            return instances
        raise AssertionError("unreachable")  # the loop returns or raises

    def _execute(
        self, provider: Provider, candidate: Candidate, instances: list[Instance], trial_id: int
    ) -> TrialRun:
        provider.wait_until_reachable(instances, self.timeout_s)
        self.store.record_instances(trial_id, instances, "running")
        return provider.execute(candidate, instances, self.workload, self.timeout_s)

    def _terminate(self, provider: Provider, instances: list[Instance]) -> None:
        provider.terminate(instances)
        self.live.discard(instances)
        for instance in instances:
            self.store.set_instance_state(instance.instance_id, "terminated")

    def _record_run(
        self,
        trial_id: int,
        index: int,
        candidate: Candidate,
        record: dict[str, Any],
        run: TrialRun,
    ) -> TrialOutcome:
        result = run.result
        spend = candidate.price_per_hour * run.billed_s / 3600.0
        runtime = result.runtime_s if result.feasible else None
        cost = None if runtime is None else candidate.price_per_hour * runtime / 3600.0
        status = result.status if runtime is not None or result.status != "ok" else "error"
        # The stored result is the workload's own result JSON (what reports read), plus how long
        # the trial itself took, which is what the search paid for.
        billing = {"boot_s": run.boot_s, "setup_s": run.setup_s, "run_s": run.run_s}
        details = {**result.details, "trial_seconds": {**billing, "billed_s": run.billed_s}}
        return self._finish(
            trial_id, index, record, status, runtime, spend, result.message, cost, details
        )

    def _finish(
        self,
        trial_id: int,
        index: int,
        record: dict[str, Any],
        status: str,
        runtime_s: float | None,
        spend: float,
        message: str,
        cost_usd: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> TrialOutcome:
        self.store.finish_trial(trial_id, status, runtime_s, cost_usd, spend, details, message)
        return TrialOutcome(trial_id, index, record, status, runtime_s, cost_usd, spend, message)
