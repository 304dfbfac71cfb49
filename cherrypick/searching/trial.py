"""One trial of a search: launch, wait, run, collect, terminate, bill, record.

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
from cherrypick.providers.base import Candidate, Instance, Provider, TrialRun
from cherrypick.store import TrialRow, TrialStore
from cherrypick.trials import CandidateRecord, TrialStatus
from cherrypick.units import job_cost
from cherrypick.workloads.base import Workload

__all__ = ["LiveInstances", "TrialRunner"]

#: Launch attempts before a trial is given up as ``cancelled`` (the cloud had no capacity).
LAUNCH_ATTEMPTS = 3
#: What a machine that booted but failed is billed: the clouds' per-second minimum.
MINIMUM_BILLED_S = 60.0


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
    """Runs trials of one workload through the providers; each ends as a stored ``TrialRow``."""

    workload: Workload
    providers: Mapping[str, Provider]
    store: TrialStore
    tag: str
    timeout_s: float
    live: LiveInstances

    def run(self, trial_id: int, candidate: Candidate) -> TrialRow:
        self.store.start_trial(trial_id, candidate.key, CandidateRecord.of(candidate))
        provider = self.providers[candidate.offering.provider]
        try:
            instances = self._launch(provider, candidate, trial_id)
        except ProvisioningError as exc:
            return self._finish(trial_id, TrialStatus.CANCELLED, spend=0.0, message=str(exc))
        try:
            run = self._execute(provider, candidate, instances, trial_id)
        except (ProvisioningError, WorkloadError) as exc:
            spend = job_cost(candidate.price_per_hour, MINIMUM_BILLED_S)
            return self._finish(trial_id, TrialStatus.ERROR, spend=spend, message=str(exc))
        finally:
            self._terminate(provider, instances)
        return self._record_run(trial_id, candidate, run)

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

    def _record_run(self, trial_id: int, candidate: Candidate, run: TrialRun) -> TrialRow:
        result = run.result
        price = candidate.price_per_hour
        runtime = result.runtime_s if result.feasible else None
        cost = None if runtime is None else job_cost(price, runtime)
        ok_without_runtime = runtime is None and result.status == TrialStatus.OK
        status = TrialStatus.ERROR if ok_without_runtime else result.status
        # The stored result is the workload's own result JSON (what reports read), plus how long
        # the trial itself took, which is what the search paid for.
        billing = {"boot_s": run.boot_s, "setup_s": run.setup_s, "run_s": run.run_s}
        details = {**result.details, "trial_seconds": {**billing, "billed_s": run.billed_s}}
        return self._finish(
            trial_id,
            status,
            spend=job_cost(price, run.billed_s),
            message=result.message,
            runtime_s=runtime,
            cost_usd=cost,
            details=details,
        )

    def _finish(
        self,
        trial_id: int,
        status: TrialStatus,
        *,
        spend: float,
        message: str,
        runtime_s: float | None = None,
        cost_usd: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> TrialRow:
        self.store.finish_trial(trial_id, status, runtime_s, cost_usd, spend, details, message)
        return self.store.trial(trial_id)
