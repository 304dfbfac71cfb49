"""A whole search over an inventory of loopback hosts reached through a real sshd: real CPU
training of a tiny CNN on every trial, a real 2-node torchrun (gloo), and nothing left after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sshd import Sshd

from cherrypick.bench.loopback import TINY_CNN, four_candidates
from cherrypick.bench.loopback import write_inventory as inventory  # noqa: F401 (test_ssh_faults)
from cherrypick.store import TrialStore

REPO = Path(__file__).resolve().parents[1]

#: A tiny CNN (narrow ResNet-18 on 32-pixel images, 8 iterations) that trains in a few seconds.
TINY = TINY_CNN


def search_file(tmp_path: Path, hosts: Path, **overrides: Any) -> Path:
    spec = {
        "workload": {"name": "cnn", "params": TINY},
        "objective": {"kind": "cost"},
        "filters": {"providers": ["ssh"], "max_nodes": 2},
        "budget": {"max_trials": 4},
        "stop": {"min_trials": 4},
        "prior": "none",
        "inventory": str(hosts),
        "trial_timeout_s": 300,
        "connect_limit_s": 20,
        "store": str(tmp_path / "search.sqlite"),
        **overrides,
    }
    path = tmp_path / "search.yaml"
    path.write_text(json.dumps(spec))
    return path


def cherrypick(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "cherrypick", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


def assert_nothing_left(tmp_path: Path, store_path: Path, key_body: str | None = None) -> None:
    """No process of a trial, no reservation, no trial folder, no search key, no secret."""
    hosts = tmp_path / "hosts"
    assert not hosts.exists() or not any(hosts.iterdir()), list(hosts.iterdir())
    with TrialStore(store_path, create=False) as store:
        assert store.reservations() == {}
        assert store.live_instances() == []
    assert not Path(f"{store_path}.keys").exists() or not any(Path(f"{store_path}.keys").iterdir())
    leftover = subprocess.run(
        ["pgrep", "-f", "cherrypick.workloads.cnn.train"], capture_output=True, text=True
    )
    assert leftover.stdout.strip() == "", leftover.stdout
    if key_body is not None:
        for path in [store_path, *Path(f"{store_path}.logs").glob("*")]:
            assert key_body not in path.read_text(errors="replace")


def test_a_search_over_loopback_hosts_trains_for_real(sshd: Sshd, tmp_path: Path) -> None:
    spec = search_file(tmp_path, four_candidates(sshd, tmp_path))
    done = cherrypick("search", str(spec), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["trials_used"] == 4
    store_path = tmp_path / "search.sqlite"
    with TrialStore(store_path, create=False) as store:
        rows = store.trials()
    assert [r.status for r in rows] == ["ok"] * 4, [r.message for r in rows]
    nodes = sorted(r.candidate.nodes for r in rows)
    assert nodes == [1, 1, 2, 2]
    for row in rows:
        assert row.result is not None
        # Measured on the hosts, not simulated: the CNN's own result, with its per-layer times.
        assert "simulated" not in row.result and row.result["layers"]
        assert row.result["environment"]["device"] == "cpu"
        seconds = row.result["trial_seconds"]
        assert {"connect", "setup", "run", "collect"} <= seconds.keys()
        assert row.search_cost_usd is not None and row.search_cost_usd > 0
    two_node = next(r for r in rows if r.candidate.nodes == 2)
    assert two_node.result is not None and two_node.result["environment"]["world_size"] == 2
    recommended = result["recommendation"]
    assert recommended["runtime_s"] > 0 and recommended["provider"] == "ssh"
    key = sshd.client_key.read_text().splitlines()[1]
    assert_nothing_left(tmp_path, store_path, key_body=key)
