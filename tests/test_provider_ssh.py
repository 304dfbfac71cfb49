"""The inventory provider over a real trial store, with ``local`` hosts (no sshd needed)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cherrypick.providers.base import (
    TAG_NODE_RANK,
    TAG_TRIAL,
    Candidate,
    InstanceState,
    LaunchRequest,
    Offering,
    Placement,
    machine_tags,
)
from cherrypick.providers.inventory import Inventory, load_inventory
from cherrypick.providers.ssh import InventoryProvider
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cherrypick.errors import CapacityError, InputError, ProvisioningError
from cherrypick.store import TrialStore
from cherrypick.trials import CandidateRecord

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def local_host(name: str, **fields: Any) -> dict[str, Any]:
    host = {"name": name, "address": "local", "gpu": "T4", "gpus": 1, "vcpus": 4}
    return host | {"memory_gib": 16, "price_per_hour": 0.5} | fields


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    """Three equal hosts (one offering) and one with a label (another offering)."""
    hosts = [
        local_host("h1"),
        local_host("h2"),
        local_host("h3"),
        local_host("x", labels={"a": "b"}),
    ]
    data = {"defaults": {"workdir": str(tmp_path / "work")}, "hosts": hosts}
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_inventory(path)


@pytest.fixture
def store(tmp_path: Path) -> TrialStore:
    return TrialStore(tmp_path / "s.sqlite")


@pytest.fixture
def provider(inventory: Inventory, store: TrialStore) -> InventoryProvider:
    return InventoryProvider(inventory, store, owner="me:1")


def offering(inventory: Inventory, host: str = "h1") -> Offering:
    return next(o for o in inventory.offerings() if host in o.extra["hosts"])


def request(offering: Offering, nodes: int, trial_id: int) -> LaunchRequest:
    return LaunchRequest(
        candidate=Candidate(offering, nodes),
        placement=Placement(offering.region),
        cluster_name=f"cp-test-{trial_id}",
        tags=machine_tags("test", trial_id, "me:1"),
        max_life_s=3600,
    )


def test_launching_reserves_hosts_and_reports_how_to_reach_them(
    provider: InventoryProvider, inventory: Inventory, store: TrialStore, tmp_path: Path
) -> None:
    assert (provider.name, provider.minimum_billed_s) == ("ssh", 0)
    record = provider.run_instances(request(offering(inventory), 2, trial_id=7))
    assert record.instance_ids == ("ssh:h1", "ssh:h2")
    assert store.reservations("ssh") == {"h1": 7, "h2": 7}
    cluster = provider.wait_instances(record, timeout_s=10)
    assert [i.node_rank for i in cluster.instances] == [0, 1]
    head = cluster.head
    assert (head.internal_ip, head.external_ip, head.instance_id) == ("127.0.0.1",) * 2 + (
        "ssh:h1",
    )
    assert head.extra["transport"] == "local"
    assert head.extra["workdir"] == f"{tmp_path}/work/cherrypick-h1"
    assert head.extra["python"] == "python3"
    assert cluster.instances[1].tags[TAG_NODE_RANK] == "1"
    assert head.tags[TAG_TRIAL] == "7"


def test_two_trials_never_hold_the_same_host(
    provider: InventoryProvider, inventory: Inventory, store: TrialStore
) -> None:
    pool = offering(inventory)
    provider.run_instances(request(pool, 2, trial_id=1))
    with pytest.raises(CapacityError, match="2 hosts of offering .* needed, 1 of 3 free"):
        provider.run_instances(request(pool, 2, trial_id=2))
    assert 2 not in store.reservations().values()  # all or none: no host half-taken
    assert provider.run_instances(request(pool, 1, trial_id=2)).instance_ids == ("ssh:h3",)
    with pytest.raises(CapacityError, match="all 3 hosts of offering ssh/inventory/.* reserved"):
        provider.run_instances(request(pool, 1, trial_id=3))
    # Another offering's host is still free.
    assert provider.run_instances(request(offering(inventory, "x"), 1, 3)).instance_ids == (
        "ssh:x",
    )


def test_a_host_another_trial_holds_is_skipped(
    provider: InventoryProvider, inventory: Inventory, tmp_path: Path
) -> None:
    TrialStore(tmp_path / "s.sqlite").reserve_hosts("ssh", ["h1"], 99)
    record = provider.run_instances(request(offering(inventory), 2, trial_id=1))
    assert record.instance_ids == ("ssh:h2", "ssh:h3")


def test_a_request_must_name_its_trial_and_an_inventory_offering(
    provider: InventoryProvider, inventory: Inventory
) -> None:
    bad = request(offering(inventory), 1, trial_id=1)
    with pytest.raises(ProvisioningError, match="cherrypick-trial"):
        provider.run_instances(LaunchRequest(bad.candidate, bad.placement, "c", {}, 60))
    foreign = Offering("aws", "us-east-1", "g4dn.xlarge", 4, 16, "T4", 1, 16, "pcie", 0.5)
    with pytest.raises(InputError, match="not an offering of"):
        provider.run_instances(request(foreign, 1, trial_id=1))


def test_query_says_running_while_reserved(
    provider: InventoryProvider, inventory: Inventory
) -> None:
    record = provider.run_instances(request(offering(inventory), 1, trial_id=1))
    ids = [*record.instance_ids, "ssh:h2", "i-0123"]
    assert provider.query_instances("inventory", ids) == {
        "ssh:h1": InstanceState.RUNNING,
        "ssh:h2": InstanceState.TERMINATED,
        "i-0123": InstanceState.TERMINATED,
    }
    provider.terminate_instances("inventory", record.instance_ids)
    assert provider.query_instances("inventory", ["ssh:h1"]) == {"ssh:h1": InstanceState.TERMINATED}


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` runs (zombies do not: some container inits never
    reap the orphans a killed group leaves)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_terminate_kills_what_the_trial_left_and_frees_the_host(
    provider: InventoryProvider, inventory: Inventory, store: TrialStore
) -> None:
    record = provider.run_instances(request(offering(inventory), 1, trial_id=1))
    workdir = Path(provider.wait_instances(record, 10).head.extra["workdir"])
    workdir.mkdir(parents=True)
    # A job as RemoteJob leaves one: a session of its own, its group id in NAME.pid.
    job = subprocess.Popen(["bash", "-c", "sleep 300 & sleep 300; wait"], start_new_session=True)
    (workdir / "train.pid").write_text(f"{job.pid}\n")
    assert _group_alive(job.pid)
    provider.terminate_instances("inventory", record.instance_ids)
    job.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _group_alive(job.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _group_alive(job.pid)  # the grandchild too
    assert not workdir.exists()
    assert store.reservations() == {}
    provider.terminate_instances("inventory", record.instance_ids)  # twice: not an error


def test_after_a_crash_a_new_provider_finds_and_frees_the_reservations(
    provider: InventoryProvider, inventory: Inventory, tmp_path: Path
) -> None:
    provider.run_instances(request(offering(inventory), 2, trial_id=4))
    provider.run_instances(request(offering(inventory, "x"), 1, trial_id=5))
    workdir = Path(inventory.hosts[1].workdir) / "cherrypick-h2"
    workdir.mkdir(parents=True)
    (workdir / "left-behind").write_text("")
    revived = InventoryProvider(inventory, TrialStore(tmp_path / "s.sqlite"))
    found = revived.list_launched({TAG_TRIAL: "4"})
    assert [(i.instance_id, i.node_rank, i.tags[TAG_TRIAL]) for i in found] == [
        ("ssh:h1", 0, "4"),
        ("ssh:h2", 1, "4"),
    ]
    assert {i.instance_id for i in revived.list_launched({})} == {"ssh:h1", "ssh:h2", "ssh:x"}
    revived.terminate_instances("inventory", [i.instance_id for i in found])
    assert not workdir.exists()
    assert [i.instance_id for i in revived.list_launched({})] == ["ssh:x"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_host_stays_reserved_and_the_error_names_it(
    tmp_path: Path, store: TrialStore
) -> None:
    key = Ed25519PrivateKey.generate()
    openssh = serialization.PrivateFormat.OpenSSH
    pem = key.private_bytes(serialization.Encoding.PEM, openssh, serialization.NoEncryption())
    (tmp_path / "id_test").write_bytes(pem)
    host = local_host("far", address="127.0.0.1", port=_closed_port(), host_key=KEY)
    data = {"defaults": {"key_file": "id_test"}, "hosts": [host, local_host("near")]}
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    inventory = load_inventory(path)
    provider = InventoryProvider(inventory, store, connect_limit_s=1)
    store.begin({}, 0)
    for trial_id in (1, 2):
        record = CandidateRecord.of(Candidate(offering(inventory, "far"), 1))
        store.start_trial(trial_id, "far", record)
    first = provider.run_instances(request(offering(inventory, "far"), 2, trial_id=1))
    store.record_instances(1, provider.wait_instances(first, 1).instances)
    store.mark_reached("ssh:far")  # the trial got there: something of it may still run
    with pytest.raises(ProvisioningError, match=r"far .*stay reserved.*cherrypick cleanup"):
        provider.terminate_instances("inventory", first.instance_ids)
    assert store.reservations() == {"far": 1}  # the reachable one was cleaned and freed
    # A host its trial never reached has nothing of ours on it: released though unreachable.
    again = InventoryProvider(inventory, store, connect_limit_s=1)
    store.release_hosts(["far"])
    second = again.run_instances(request(offering(inventory, "far"), 1, trial_id=2))
    store.record_instances(2, again.wait_instances(second, 1).instances)
    again.terminate_instances("inventory", second.instance_ids)
    assert store.reservations() == {}
