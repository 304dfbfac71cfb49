"""One contract, every provider: the simulated cloud, your own hosts (inventory), and AWS, GCP and
Azure over their SDKs' faithful fakes (moto; googleapiclient's bundled discovery document over a
stateful ``http``; the Azure SDK over a scripted transport).

Each provider comes with a harness (``tests/fake_<cloud>.py`` for the clouds) that knows the
fake's own state (``live_ids``, ``leftovers``) and injects the cloud's real error answers
(``fail``). The cases: launch and wait (tags, ranks, addresses), listing by tag, idempotent
termination confirmed by a query, search-level clean-up, each error's class and scope, and a
trial's failover across placements with nothing leaked.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cherrypick.providers.base import (
    TAG_NODE_RANK,
    TAG_SEARCH,
    TAG_TRIAL,
    Candidate,
    InstanceState,
    LaunchRequest,
    Offering,
    Placement,
    machine_tags,
)
from cherrypick.workloads.base import create_workload

from cherrypick.errors import (
    CapacityError,
    CredentialsError,
    ProvisioningError,
    QuotaError,
    Scope,
    UnreachableError,
)
from cherrypick.searching.display import TrialEvent
from cherrypick.searching.trial import TrialContext, TrialRunner
from cherrypick.store import TrialStore
from cherrypick.trials import TrialStatus

SEARCH = "cherrypick-contract0001"


class SimulatedHarness:
    """The simulated cloud: its state is its own ``_running`` table; it injects no errors."""

    error_kinds: frozenset[str] = frozenset()

    def __init__(self) -> None:
        from cherrypick.providers.simulated import SimulatedProvider

        self.provider = SimulatedProvider(0)
        offering = Offering(
            "aws", "us-east-1", "g5.xlarge", 4, 16, "A10G", 1, 24, "pcie", 1.006,
            extra={"zones": ("use1-az1", "use1-az2", "use1-az4")},
        )  # fmt: skip
        self.candidate = Candidate(offering, 1)
        self.pair = Candidate(offering, 2)
        self.alternatives: list[Candidate] = []

    def live_ids(self) -> set[str]:
        return set(self.provider._running)

    def leftovers(self, search_tag: str) -> list[str]:
        return []


class InventoryHarness:
    """Your own hosts: "launching" reserves them in the search's store, whose reservations
    table is the state; it injects no errors (a host that is busy is the search's own)."""

    error_kinds: frozenset[str] = frozenset()

    def __init__(self, tmp_path: Path) -> None:
        from cherrypick.providers.inventory import load_inventory
        from cherrypick.providers.ssh import InventoryProvider

        hosts = [
            {"name": f"h{i}", "address": "local", "gpu": "T4", "gpus": 1, "vcpus": 4}
            | {"memory_gib": 16, "price_per_hour": 0.5}
            for i in range(3)
        ]
        data = {"defaults": {"workdir": str(tmp_path / "work")}, "hosts": hosts}
        path = tmp_path / "inventory.yaml"
        path.write_text(yaml.safe_dump(data))
        inventory = load_inventory(path)
        self.store = TrialStore(tmp_path / "inventory.sqlite")
        self.provider = InventoryProvider(inventory, self.store, owner="me:1")
        offering = inventory.offerings()[0]
        self.candidate = Candidate(offering, 1)
        self.pair = Candidate(offering, 2)
        self.alternatives: list[Candidate] = []

    def live_ids(self) -> set[str]:
        return {f"ssh:{name}" for name in self.store.reservations("ssh")}

    def leftovers(self, search_tag: str) -> list[str]:
        return []


@contextlib.contextmanager
def _harness(name: str, tmp_path: Path) -> Iterator[Any]:
    if name == "simulated":
        yield SimulatedHarness()
    elif name == "ssh":
        yield InventoryHarness(tmp_path)
    else:
        with importlib.import_module(f"fake_{name}").harness() as harness:
            yield harness


PROVIDERS = ["simulated", "ssh", "aws", "gcp", "azure"]
CLOUDS = ["aws", "gcp", "azure"]


@pytest.fixture(params=PROVIDERS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with _harness(request.param, tmp_path) as made:
        yield made


@pytest.fixture(params=CLOUDS)
def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with _harness(request.param, tmp_path) as made:
        yield made


def launch(harness: Any, candidate: Candidate, trial: int = 1, placement: Any = None) -> Any:
    where = placement or harness.provider.placements(candidate)[0]
    tags = machine_tags(SEARCH, trial, "me:1")
    request = LaunchRequest(
        candidate, where, f"{SEARCH}-t{trial}-a0", tags, 3600.0, ssh_public_key=PUBLIC_KEY
    )
    return harness.provider.run_instances(request)


PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


# -- the lifecycle, on every provider ---------------------------------------------------------


def test_a_launched_cluster_runs_tagged_by_rank_and_reachable(harness: Any) -> None:
    record = launch(harness, harness.pair)
    cluster = harness.provider.wait_instances(record, timeout_s=60)
    assert [i.node_rank for i in cluster.instances] == [0, 1]
    assert {i.instance_id for i in cluster.instances} == set(record.instance_ids)
    for rank, instance in enumerate(cluster.instances):
        assert instance.tags[TAG_SEARCH] == SEARCH and instance.tags[TAG_TRIAL] == "1"
        assert instance.tags[TAG_NODE_RANK] == str(rank)
        assert instance.address and instance.ssh_port > 0
    states = harness.provider.query_instances(record.placement.region, record.instance_ids)
    assert set(states.values()) == {InstanceState.RUNNING}
    assert set(record.instance_ids) <= harness.live_ids()


def test_listing_by_tag_finds_exactly_the_trials_machines(harness: Any) -> None:
    first = launch(harness, harness.candidate, trial=1)
    second = launch(harness, harness.candidate, trial=2)
    harness.provider.wait_instances(second, timeout_s=60)
    found = harness.provider.list_launched({TAG_SEARCH: SEARCH, TAG_TRIAL: "2"})
    assert {i.instance_id for i in found} == set(second.instance_ids)
    everything = harness.provider.list_launched({TAG_SEARCH: SEARCH})
    assert {i.instance_id for i in everything} >= set(first.instance_ids + second.instance_ids)
    assert harness.provider.list_launched({TAG_SEARCH: SEARCH, TAG_TRIAL: "99"}) == []


def test_termination_is_confirmed_by_a_query_and_idempotent(harness: Any) -> None:
    record = launch(harness, harness.pair)
    harness.provider.wait_instances(record, timeout_s=60)
    region, ids = record.placement.region, record.instance_ids
    harness.provider.terminate_instances(region, ids)
    harness.provider.terminate_instances(region, ids)  # already gone: not an error
    states = harness.provider.query_instances(region, ids)
    assert set(states.values()) == {InstanceState.TERMINATED}
    assert not set(ids) & harness.live_ids()
    assert list(harness.provider.list_launched({TAG_SEARCH: SEARCH})) == []


def test_an_unknown_machine_is_terminated(harness: Any) -> None:
    record = launch(harness, harness.candidate)
    harness.provider.terminate_instances(record.placement.region, record.instance_ids)
    states = harness.provider.query_instances(record.placement.region, record.instance_ids)
    assert states == {i: InstanceState.TERMINATED for i in record.instance_ids}


def test_search_resources_are_deleted_once_the_machines_are_gone(harness: Any) -> None:
    record = launch(harness, harness.candidate)
    harness.provider.wait_instances(record, timeout_s=60)
    harness.provider.terminate_instances(record.placement.region, record.instance_ids)
    harness.provider.cleanup_search(SEARCH)
    assert harness.leftovers(SEARCH) == []
    assert list(harness.provider.cleanup_search(SEARCH)) == []  # nothing left: nothing to do


# -- errors, on the clouds that have them ------------------------------------------------------


def _injected(cloud: Any, kind: str) -> ProvisioningError:
    if kind not in cloud.error_kinds:
        pytest.fail(f"the {cloud.provider.name} harness cannot inject {kind} errors")
    placement = cloud.provider.placements(cloud.candidate)[0]
    cloud.fail(placement, kind)
    with pytest.raises(ProvisioningError) as caught:
        launch(cloud, cloud.candidate, placement=placement)
    assert cloud.live_ids() == set()  # a refused launch leaves nothing behind
    return caught.value


def test_no_capacity_blocks_the_zone_and_leaves_nothing(cloud: Any) -> None:
    error = _injected(cloud, "capacity")
    assert isinstance(error, CapacityError) and not isinstance(error, QuotaError)
    assert error.scope in (Scope.ZONE, Scope.REGION) and error.retry_s is None
    assert error.code


def test_a_quota_error_blocks_the_region(cloud: Any) -> None:
    error = _injected(cloud, "quota")
    assert isinstance(error, QuotaError) and error.scope is Scope.REGION


def test_bad_credentials_stop_with_doctors_advice(cloud: Any) -> None:
    error = _injected(cloud, "credentials")
    assert isinstance(error, CredentialsError) and error.scope is Scope.CLOUD
    assert error.exit_code == 2
    assert f"cherrypick doctor --provider {cloud.provider.name}" in str(error)


def test_a_transient_error_is_retried_until_the_launch_succeeds(cloud: Any) -> None:
    if "transient" not in cloud.error_kinds:
        pytest.fail(f"the {cloud.provider.name} harness cannot inject transient errors")
    placement = cloud.provider.placements(cloud.candidate)[0]
    cloud.fail(placement, "transient", times=2)
    record = launch(cloud, cloud.candidate, placement=placement)
    assert set(record.instance_ids) == cloud.live_ids()


# -- failover: a trial through the engine ------------------------------------------------------


def _trial(cloud: Any, tmp_path: Path) -> tuple[Any, TrialStore]:
    """Run one trial whose machines never answer SSH: it launches, fails to connect, and
    terminates; the store's launch records say where it tried."""
    store = TrialStore(tmp_path / "trials.sqlite")
    store.begin({"contract": True}, 0)

    def unreachable(instance: Any) -> Any:
        raise UnreachableError(instance.address, "test: no sshd here")

    events: list[TrialEvent] = []
    context = TrialContext(
        workload=create_workload("cnn", {"model": "alexnet", "batch_size": 8, "epochs": 1}),
        providers={cloud.provider.name: cloud.provider},
        store=store,
        search_tag=SEARCH,
        owner="me:1",
        timeout_s=60.0,
        connect=unreachable,
        logs=tmp_path / "logs",
        events=events.append,
        alternatives=lambda c: [c, *cloud.alternatives],
        ssh_public_key=lambda: PUBLIC_KEY,
        boot_limit_s=60.0,
    )
    row = TrialRunner(context, 0, cloud.candidate).run()
    return row, store


def _placements(cloud: Any) -> list[Placement]:
    candidates = [cloud.candidate, *cloud.alternatives]
    return [p for c in candidates for p in cloud.provider.placements(c)]


def test_capacity_in_the_first_two_placements_lands_the_trial_in_the_third(
    cloud: Any, tmp_path: Path
) -> None:
    placements = _placements(cloud)
    assert len(placements) >= 3, "the harness must offer three placements"
    for placement in placements[:2]:
        cloud.fail(placement, "capacity")
    row, store = _trial(cloud, tmp_path)
    launches = store.launches()
    assert [(x.region, x.zone) for x in launches] == [(p.region, p.zone) for p in placements[:3]]
    assert [x.state for x in launches] == ["failed", "failed", "terminated"]
    assert row.status == TrialStatus.ERROR and "no sshd here" in row.message
    assert cloud.live_ids() == set()


def test_a_quota_error_skips_the_rest_of_its_region(cloud: Any, tmp_path: Path) -> None:
    placements = _placements(cloud)
    first = placements[0]
    cloud.fail(first, "quota")
    row, store = _trial(cloud, tmp_path)
    tried = [(x.region, x.zone) for x in store.launches()]
    elsewhere = next(p for p in placements if p.region != first.region)
    assert tried == [(first.region, first.zone), (elsewhere.region, elsewhere.zone)]
    assert cloud.live_ids() == set()


def test_bad_credentials_stop_the_trial_at_once(cloud: Any, tmp_path: Path) -> None:
    cloud.fail(_placements(cloud)[0], "credentials")
    with pytest.raises(CredentialsError):
        _trial(cloud, tmp_path)
    assert cloud.live_ids() == set()
