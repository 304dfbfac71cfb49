"""``cherrypick search`` without ``--dry-run`` through a whole cloud path: each cloud's API is its
SDK's faithful fake (moto; googleapiclient over a stateful ``http``; the Azure SDK over a scripted
transport), and the machines it "launches" are reached at a real loopback ``sshd``, so launch ->
SSH -> train -> result -> terminate runs for real except the cloud API. Afterwards the fake holds
no running machine and nothing of the search (key pair, security group, firewall rule, resource
group)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cherrypick.providers.base import TAG_SEARCH, Instance, provider_registry
from cryptography.hazmat.primitives import serialization
from sshd import Sshd
from test_provider_contract import CLOUDS, _harness

from cherrypick import cli
from cherrypick.bench.loopback import TINY_CNN
from cherrypick.searching import execution
from cherrypick.searching.loop import Search
from cherrypick.store import TrialStore


def search_file(tmp_path: Path, harness: Any) -> Path:
    offering = harness.candidate.offering
    cloud = offering.provider
    spec = {
        "workload": {
            "name": "cnn",
            "params": {**TINY_CNN, "device": "cpu", "python": sys.executable},
        },
        "objective": {"kind": "cost"},
        "filters": {
            "providers": [cloud],
            "regions": [offering.region],
            "gpus": [offering.gpu],
            "max_nodes": 1,
            # The 1-GPU machines and the next size up (2 GPUs on GCP: two processes on one node).
            "max_price_per_hour": round(offering.price_per_hour * 2.01, 3),
        },
        "budget": {"max_trials": 2},
        "stop": {"min_trials": 2},
        "prior": "none",
        "trial_timeout_s": 300,
        "connect_limit_s": 20,
        "clouds": {cloud: {"ssh_cidr": "127.0.0.1/32"}},
        "store": str(tmp_path / "search.sqlite"),
    }
    path = tmp_path / "search.yaml"
    path.write_text(json.dumps(spec))
    return path


def reach_at_loopback(sshd: Sshd, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every machine the search connects to is the loopback sshd (its address, port and user),
    which accepts the search's own key; returns the addresses the cloud gave, as connected."""
    connect = Search._connect
    asked: list[str] = []

    def at_loopback(self: Search, instance: Instance) -> Any:
        asked.append(instance.address)
        key = self._keys.private_path()
        assert key is not None, "a cloud search makes its own SSH key"
        _authorise(sshd, Path(key))
        mapped = dataclasses.replace(
            instance, external_ip=sshd.host, ssh_port=sshd.port, ssh_user=sshd.user
        )
        return connect(self, mapped)

    monkeypatch.setattr(Search, "_connect", at_loopback)
    # The cloud image's interpreter, which has torch (as a deep-learning image's has), is this one.
    monkeypatch.setattr(execution, "_python", lambda instance: sys.executable)
    return asked


def _authorise(sshd: Sshd, private: Path) -> None:
    key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    authorized = sshd.directory / "authorized_keys"
    line = public.decode() + "\n"
    if line not in authorized.read_text():
        with authorized.open("a") as out:
            out.write(line)


@contextlib.contextmanager
def cloud_behind_the_cli(cloud: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The cloud's fake harness, whose provider is the one ``cherrypick search`` makes for
    ``cloud``, with the working directory and cache in ``tmp_path``."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    with _harness(cloud, tmp_path) as harness:
        monkeypatch.setitem(
            provider_registry._factories, cloud, lambda *args, **kwargs: harness.provider
        )
        yield harness


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_search_on_the_clouds_fake_recommends_and_leaves_nothing(
    cloud: str, sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with cloud_behind_the_cli(cloud, tmp_path, monkeypatch) as harness:
        asked = reach_at_loopback(sshd, monkeypatch)
        code = cli.main(["search", str(search_file(tmp_path, harness)), "--json", "--quiet"])
        out = capsys.readouterr()
        assert code == 0, out.err
        result = json.loads(out.out)
        assert result["recommendation"] is not None, result
        assert result["recommendation"]["provider"] == cloud
        assert asked and sshd.host not in asked  # the cloud's addresses, mapped by this test
        assert harness.live_ids() == set()
        with TrialStore(tmp_path / "search.sqlite", create=False) as store:
            tag = {launch.tags[TAG_SEARCH] for launch in store.launches()}
            assert len(tag) == 1 and store.live_instances() == []
            assert [x.state for x in store.launches()] == ["terminated"] * len(store.launches())
        assert harness.leftovers(tag.pop()) == []
    assert not any(Path(f"{tmp_path / 'search.sqlite'}.keys").glob("*"))


@pytest.mark.parametrize("cloud", CLOUDS)
def test_bad_credentials_end_the_search_with_doctors_advice_after_one_attempt(
    cloud: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with cloud_behind_the_cli(cloud, tmp_path, monkeypatch) as harness:
        for candidate in [harness.candidate, *harness.alternatives]:
            for placement in harness.provider.placements(candidate):
                harness.fail(placement, "credentials")
        code = cli.main(["search", str(search_file(tmp_path, harness)), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"cherrypick doctor --provider {cloud}" in err
        assert "Traceback" not in err
        with TrialStore(tmp_path / "search.sqlite", create=False) as store:
            assert len(store.launches()) == 1  # the whole cloud is blocked after the first
            assert store.live_instances() == []
        assert harness.live_ids() == set()
