"""The inventory file: validation with field paths, pinned host keys, grouping into offerings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cherrypick.providers.base import Candidate
from cherrypick.providers.inventory import load_inventory, require_priced

from cherrypick.errors import InputError, ValidationError
from cherrypick.trials import CandidateRecord

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOp5/CO2rKvM2OnpWsqaXyymog4ls47aoA1e9d/nwgi5"


def gpu_host(name: str, address: str, **fields: Any) -> dict[str, Any]:
    host = {
        "name": name,
        "address": address,
        "host_key": KEY,
        "gpu": "A100",
        "gpus": 8,
        "vcpus": 96,
        "memory_gib": 1152,
        "price_per_hour": 0,
    }
    return {**host, **fields}


def write(tmp_path: Path, data: Any, name: str = "inventory.yaml") -> Path:
    (tmp_path / "id_test").write_text("not really a key\n")
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def inventory_data(*hosts: dict[str, Any]) -> dict[str, Any]:
    return {"defaults": {"user": "ubuntu", "key_file": "id_test"}, "hosts": list(hosts)}


def test_defaults_fill_in_and_paths_resolve_next_to_the_file(tmp_path: Path) -> None:
    known = f"# a comment\n[10.0.0.2]:2222 {OTHER_KEY}\n10.0.0.2 {KEY}\n"
    (tmp_path / "known_hosts").write_text(known)
    data = inventory_data(
        gpu_host("a", "10.0.0.1", port=2200, user="root"),
        gpu_host("b", "10.0.0.2", port=2222, host_key=None, known_hosts="known_hosts"),
    )
    data["hosts"][1].pop("host_key")
    inventory = load_inventory(write(tmp_path, data))
    a, b = inventory.hosts
    assert (a.user, a.port, a.workdir, a.python) == ("root", 2200, "/tmp", "python3")
    assert b.user == "ubuntu" and b.port == 2222
    assert a.key_file == str(tmp_path / "id_test")
    assert a.host_key == KEY
    assert b.host_key == OTHER_KEY  # the [host]:port entry, not the one for port 22


def test_a_local_host_needs_no_key(tmp_path: Path) -> None:
    data = {"hosts": [gpu_host("here", "local", host_key=None, gpu="none", gpus=0)]}
    data["hosts"][0].pop("host_key")
    (host,) = load_inventory(write(tmp_path, data)).hosts
    assert host.local and host.key_file is None and host.host_key is None


def _drop(field: str) -> Any:
    return lambda h: {k: v for k, v in h.items() if k != field}


MISTAKES = [
    ("no pinned key", _drop("host_key"), "hosts.0.host_key", "exactly one of host_key"),
    ("both keys", lambda h: {**h, "known_hosts": "kh"}, "hosts.0.host_key", "exactly one"),
    ("bad host key", lambda h: {**h, "host_key": "AAAA"}, "hosts.0.host_key", "OpenSSH"),
    ("port too big", lambda h: {**h, "port": 70000}, "hosts.0.port", "less than or equal"),
    ("port as text", lambda h: {**h, "port": "22"}, "hosts.0.port", "integer"),
    ("unknown gpu", lambda h: {**h, "gpu": "Z9000"}, "hosts.0.gpu", "unknown GPU 'Z9000'"),
    ("cpu with gpus", lambda h: {**h, "gpu": "none"}, "hosts.0.gpus", "gpus: 0"),
    ("gpu without", lambda h: {**h, "gpus": 0}, "hosts.0.gpus", "gpus: 0"),
    (
        "hostile name",
        lambda h: {**h, "name": "x; touch /tmp/pwned"},
        "hosts.0.name",
        "letters, digits",
    ),
    (
        "hostile workdir",
        lambda h: {**h, "workdir": "/tmp/$(reboot)"},
        "hosts.0.workdir",
        "absolute path",
    ),
    ("relative workdir", lambda h: {**h, "workdir": "tmp"}, "hosts.0.workdir", "absolute"),
    (
        "negative price",
        lambda h: {**h, "price_per_hour": -1},
        "hosts.0.price_per_hour",
        "greater than or equal",
    ),
    ("no vcpus", _drop("vcpus"), "hosts.0.vcpus", "required field is missing"),
    ("misspelt", lambda h: {**h, "colour": "red"}, "hosts.0.colour", "unknown field"),
    ("hostile label", lambda h: {**h, "labels": {"a": "b c"}}, "hosts.0.labels.a", "not allowed"),
    ("no key file", lambda h: {**h, "key_file": "missing"}, "hosts.0.key_file", "no key file"),
    (
        "no such file",
        lambda h: {**_drop("host_key")(h), "known_hosts": "nope"},
        "known_hosts",
        "cannot",
    ),
]


@pytest.mark.parametrize(
    ("mistake", "change", "field", "message"), MISTAKES, ids=[m[0] for m in MISTAKES]
)
def test_each_mistake_names_its_field(
    tmp_path: Path, mistake: str, change: Any, field: str, message: str
) -> None:
    path = write(tmp_path, inventory_data(change(gpu_host("a", "10.0.0.1"))))
    with pytest.raises(ValidationError) as caught:
        load_inventory(path)
    assert caught.value.source == str(path)
    assert caught.value.field is not None and caught.value.field.endswith(field), mistake
    assert message in caught.value.message, mistake


def test_a_duplicate_name_names_the_second_host(tmp_path: Path) -> None:
    data = inventory_data(gpu_host("a", "10.0.0.1"), gpu_host("a", "10.0.0.2"))
    with pytest.raises(ValidationError, match="duplicate host name") as caught:
        load_inventory(write(tmp_path, data))
    assert caught.value.field == "hosts.1.name"


def test_one_machine_under_two_names_is_refused(tmp_path: Path) -> None:
    data = inventory_data(gpu_host("a", "10.0.0.1"), gpu_host("b", "10.0.0.1"))
    with pytest.raises(ValidationError, match="same address and port") as caught:
        load_inventory(write(tmp_path, data))
    assert caught.value.field == "hosts.1.address"


def test_defaults_and_hosts_sections_are_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        load_inventory(write(tmp_path, {"defaults": {"port": 0}, "hosts": [gpu_host("a", "h")]}))
    assert caught.value.field == "defaults.port"
    with pytest.raises(ValidationError) as caught:
        load_inventory(write(tmp_path, {"hosts": []}))
    assert caught.value.field == "hosts"


def test_an_error_names_the_line_of_its_field(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "hosts:\n"
        "  - name: a\n"
        "    address: local\n"
        "    gpu: none\n"
        "    gpus: 0\n"
        "    vcpus: 4\n"
        "    memory_gib: 8\n"
        "    price_per_hour: -2\n"
    )
    with pytest.raises(ValidationError) as caught:
        load_inventory(path)
    assert (caught.value.line, caught.value.field) == (8, "hosts.0.price_per_hour")


def test_bad_yaml_and_bad_bytes_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  - name: a\n    address: [unclosed\n")
    with pytest.raises(ValidationError, match="not valid YAML") as caught:
        load_inventory(path)
    assert caught.value.line is not None and caught.value.line >= 3
    path.write_bytes(b"hosts:\n  - name: \xff\n")
    with pytest.raises(ValidationError, match="not UTF-8") as caught:
        load_inventory(path)
    assert caught.value.line == 2


def test_known_hosts_without_the_host_says_how_to_fix_it(tmp_path: Path) -> None:
    (tmp_path / "kh").write_text(f"10.0.0.1 {KEY}\n@revoked 10.0.0.2 {KEY}\n")
    host = gpu_host("b", "10.0.0.2", known_hosts="kh")
    host.pop("host_key")
    with pytest.raises(ValidationError, match="no key for 10.0.0.2.*ssh-keyscan") as caught:
        load_inventory(write(tmp_path, inventory_data(host)))
    assert caught.value.field == "hosts.0.known_hosts"


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_hashed_known_hosts_entries_are_matched(tmp_path: Path) -> None:
    known = tmp_path / "kh"
    known.write_text(f"gpu.example {OTHER_KEY}\n[10.0.0.3]:2022 {KEY}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "10.0.0.3" not in known.read_text()
    host = gpu_host("c", "10.0.0.3", port=2022, known_hosts="kh")
    host.pop("host_key")
    (loaded,) = load_inventory(write(tmp_path, inventory_data(host))).hosts
    assert loaded.host_key == KEY


def test_equal_hosts_form_one_offering(tmp_path: Path) -> None:
    data = inventory_data(
        gpu_host("a1", "10.0.0.1"),
        gpu_host("a2", "10.0.0.2"),
        gpu_host("r", "10.0.0.3", labels={"rack": "b"}),
        gpu_host("p", "10.0.0.4", price_per_hour=2.5),
        gpu_host("g", "10.0.0.5", group="pool-a"),
    )
    offerings = load_inventory(write(tmp_path, data)).offerings()
    by_hosts = {o.extra["hosts"]: o for o in offerings}
    assert set(by_hosts) == {("a1", "a2"), ("r",), ("p",), ("g",)}
    pair = by_hosts[("a1", "a2")]
    assert (pair.provider, pair.region, pair.instance_type) == (
        "ssh",
        "inventory",
        "A100x8-96cpu-1152gib",
    )
    assert (pair.gpu_memory_gib, pair.extra["threads"], pair.extra["network_gbps"]) == (40, 96, 10)
    assert by_hosts[("r",)].instance_type.endswith("-rack.b")
    assert by_hosts[("r",)].extra["labels"] == {"rack": "b"}
    assert by_hosts[("g",)].region == "pool-a"
    assert len({o.key for o in offerings}) == len(offerings)  # the priced one is told apart


def test_a_candidate_has_at_most_as_many_nodes_as_its_offering_has_hosts(tmp_path: Path) -> None:
    data = inventory_data(
        gpu_host("a1", "10.0.0.1"), gpu_host("a2", "10.0.0.2"), gpu_host("b", "10.0.0.3", gpus=4)
    )
    inventory = load_inventory(write(tmp_path, data))
    nodes = sorted((c.offering.gpus_per_node, c.nodes) for c in inventory.candidates())
    assert nodes == [(4, 1), (8, 1), (8, 2)]
    assert [c.nodes for c in inventory.candidates(max_nodes=1)] == [1, 1]


def test_a_cpu_host_is_an_offering_without_gpus(tmp_path: Path) -> None:
    host = {"name": "cpu1", "address": "local", "gpu": "none", "gpus": 0}
    host |= {"vcpus": 16, "memory_gib": 64, "price_per_hour": 0.4}
    (offering,) = load_inventory(write(tmp_path, {"hosts": [host]})).offerings()
    assert (offering.gpu, offering.gpus_per_node, offering.gpu_memory_gib) == ("none", 0, 0)
    assert offering.instance_type == "cpu-16cpu-64gib"
    assert "no GPU" in CandidateRecord.of(Candidate(offering)).describe()


def test_a_cost_objective_needs_a_priced_host(tmp_path: Path) -> None:
    free = load_inventory(write(tmp_path, inventory_data(gpu_host("a", "10.0.0.1"))))
    with pytest.raises(InputError, match=r"every host costs 0 per hour.*kind: runtime"):
        require_priced(free, "cost")
    require_priced(free, "runtime")
    data = inventory_data(gpu_host("a", "10.0.0.1"), gpu_host("b", "10.0.0.2", price_per_hour=1))
    require_priced(load_inventory(write(tmp_path, data, "priced.yaml")), "cost")
