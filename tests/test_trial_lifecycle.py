"""One trial's life: placements and capacity, the spend budget with trials in flight, the
search's SSH key (on the simulated provider), and hosts that another trial of the search holds
(on local inventory hosts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cherrypick.providers.base import Candidate, LaunchRequest, ProvisionRecord
from cherrypick.providers.simulated import SimulatedProvider
from cherrypick.workloads.base import TrialResult, Workload
from test_search import Steps

from cherrypick.api import search
from cherrypick.errors import CapacityError, Scope
from cherrypick.store import TrialStore
from cherrypick.trials import TrialStatus


class FullRegion(SimulatedProvider):
    """Has no machines in ``full`` regions; records where it was asked to launch."""

    def __init__(self, full: set[str] | None = None, key_dir: Path | None = None) -> None:
        super().__init__(0)
        self.key_dir = key_dir
        self.private_keys: set[str] = set()
        self.full = full
        self.asked: list[tuple[str, str]] = []
        self.keys: list[str | None] = []
        self.needs_ssh_key = key_dir is not None

    def run_instances(self, request: LaunchRequest) -> ProvisionRecord:
        where = request.placement.region
        self.asked.append((request.candidate.offering.instance_type, where))
        self.keys.append(request.ssh_public_key)
        if self.key_dir is not None:  # what an attacker would look for in logs and stores
            private = (self.key_dir / "id_ed25519").read_text().splitlines()[1:-1]
            self.private_keys.add("".join(private))
        if self.full is None or where in self.full:
            raise CapacityError(
                self.name, "no machines of that type here", region=where, scope=Scope.REGION
            )
        return super().run_instances(request)


def test_no_capacity_anywhere_is_unavailable_and_teaches_the_optimiser_nothing(
    tmp_path: Path,
) -> None:
    provider = FullRegion(full=None)
    result = search(
        Steps(), "cost", provider=provider, providers=["aws"], gpus=["A10G"], max_trials=4,
        max_nodes=1, store=tmp_path / "s.sqlite",
    )  # fmt: skip
    with TrialStore(tmp_path / "s.sqlite", create=False) as store:
        rows = store.trials()
    assert rows and all(r.status == TrialStatus.UNAVAILABLE for r in rows)
    assert all(r.runtime_s is None and r.search_cost_usd == 0 for r in rows)
    assert all("no placement has machines" in r.message for r in rows)
    assert result.recommendation is None and result.search_cost_usd == 0
    # Each candidate tried every region its hardware is offered in, then was given up.
    tried = {t for t, _ in provider.asked}
    assert len(rows) == len(tried)
    assert any(sum(1 for t, _ in provider.asked if t == kind) > 1 for kind in tried)


def test_a_full_region_sends_the_trial_to_the_next_placement_and_bills_it_there(
    tmp_path: Path,
) -> None:
    probe = FullRegion(full=set())
    search(Steps(), "cost", provider=probe, providers=["aws"], gpus=["A10G"], max_trials=1,
           max_nodes=1, store=tmp_path / "probe.sqlite")  # fmt: skip
    (first_type, cheapest_region) = probe.asked[0]
    provider = FullRegion(full={cheapest_region})
    search(Steps(), "cost", provider=provider, providers=["aws"], gpus=["A10G"], max_trials=1,
           max_nodes=1, store=tmp_path / "s.sqlite")  # fmt: skip
    assert provider.asked[0] == (first_type, cheapest_region)
    assert provider.asked[1][0] == first_type and provider.asked[1][1] != cheapest_region
    with TrialStore(tmp_path / "s.sqlite", create=False) as store:
        (row,) = store.trials()
        launches = {(launch.region, launch.state) for launch in store.open_launches()}
    assert row.status == TrialStatus.OK and row.result is not None
    assert row.result["billing"]["placement"].split("/")[0] == provider.asked[1][1]
    assert launches == set()  # the failed and the used launch are both closed


@pytest.mark.parametrize("parallel", [1, 3])
def test_the_spend_budget_counts_trials_in_flight(tmp_path: Path, parallel: int) -> None:
    budget = 30.0
    result = search(
        Steps(), "cost", providers=["aws"], max_trials=20, max_search_usd=budget, ei_fraction=0,
        parallel=parallel, store=tmp_path / "s.sqlite",
    )  # fmt: skip
    assert result.stopped_because == "search budget"
    assert 0 < result.search_cost_usd <= budget


def test_the_search_key_reaches_fresh_machines_and_is_gone_afterwards(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    provider = FullRegion(full=set(), key_dir=Path(f"{store}.keys"))
    search(Steps(), "cost", provider=provider, providers=["aws"], gpus=["A10G"], max_trials=2,
           store=store)  # fmt: skip
    keys = set(provider.keys)
    assert len(keys) == 1  # one key pair per search
    (public,) = keys
    assert public is not None and public.startswith("ssh-ed25519 ")
    assert not Path(f"{store}.keys").exists() or not any(Path(f"{store}.keys").iterdir())
    (private,) = provider.private_keys
    assert len(private) > 60
    stored = store.read_bytes().decode(errors="replace")
    assert private[:40] not in stored and public.split()[1] not in stored


class Sleeper(Workload):
    """Sleeps a moment on every node, then rank 0 writes how long the job would take."""

    name = "sleeper"
    result_path = "result.json"

    def setup_commands(self) -> list[str]:
        return []

    def command(self, candidate: Candidate, node_rank: int, addr: str, port: int) -> str:
        seconds = 3600 / candidate.nodes
        write = f"echo {seconds} > result.json" if node_rank == 0 else "true"
        return f"sleep 1 && {write}"

    def parse_result(self, raw: bytes) -> TrialResult:
        return TrialResult("ok", float(raw))


def test_a_trial_waits_for_hosts_another_trial_of_the_search_holds(tmp_path: Path) -> None:
    hosts = [
        {"name": f"h{i}", "address": "local", "gpu": "none", "gpus": 0, "vcpus": 1,
         "memory_gib": 1, "price_per_hour": 0.1, "workdir": str(tmp_path / "hosts")}
        for i in range(2)
    ]  # fmt: skip
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": hosts}))
    result = search(
        Sleeper(), "runtime", provider="cloud", providers=["ssh"], inventory=inventory,
        max_nodes=2, max_trials=2, min_trials=2, parallel=2, store=tmp_path / "s.sqlite",
    )  # fmt: skip
    with TrialStore(tmp_path / "s.sqlite", create=False) as store:
        rows = store.trials()
        assert store.reservations() == {}
    # One node and two nodes of the same two hosts: both ran, one after the other.
    assert sorted(r.candidate.nodes for r in rows) == [1, 2]
    assert [r.status for r in rows] == ["ok", "ok"], [r.message for r in rows]
    first, second = sorted(rows, key=lambda r: r.finished_at or 0)
    assert second.started_at < first.finished_at  # asked while the first was in flight
    assert result.recommendation is not None and result.recommendation.nodes == 2
