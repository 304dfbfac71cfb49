"""The README's custom workload runs for real: its commands on hosts of an inventory (here all
this machine, ``address: local``), through the same trial path as SSH hosts, torchrun included."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

import cherrypick
from cherrypick.store import TrialStore

README = Path(__file__).resolve().parents[1] / "README.md"

#: What the README's train.py stands for: on rank 0, write the seconds the job would take, which
#: here grow with 1 / (nodes x threads), so that the search has a best configuration to find.
TRAIN = """
import json, os
world = int(os.environ["WORLD_SIZE"])
threads = int(os.environ.get("THREADS", "1"))
if os.environ["RANK"] == "0":
    json.dump({"seconds": 3600.0 / (world * threads)}, open("result.json", "w"))
"""


def readme_fine_tune() -> type:
    """The FineTune class exactly as the README defines it."""
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[:1]
    definition = code.split("\nresult = cherrypick.search(")[0]
    namespace: dict[str, Any] = {}
    exec(definition, namespace)  # noqa: S102 - the docs' own example, run as a user would
    fine_tune: type = namespace["FineTune"]
    return fine_tune


def test_the_readme_workload_runs_its_commands_on_real_hosts(tmp_path: Path) -> None:
    fine_tune = readme_fine_tune()

    class OnThisMachine(fine_tune):  # type: ignore[misc, valid-type]
        """The README's workload, with set-up that puts its train.py on the host."""

        def setup_commands(self) -> list[str]:
            own = [f"printf '%s' {shlex.quote(TRAIN)} > train.py", ": > requirements.txt"]
            return [*own, *super().setup_commands()]

        def estimate_runtime(self, candidate: Any) -> None:
            return None  # the README's guesses are per GPU; these hosts have none

        def command(self, candidate: Any, node_rank: int, addr: str, port: int) -> str:
            threads = candidate.offering.vcpus
            torchrun = f"{Path(sys.executable).parent}/torchrun"
            line: str = super().command(candidate, node_rank, addr, port)
            return f"export THREADS={threads}; {line.replace('torchrun', torchrun, 1)}"

    hosts = [
        {"name": f"h{i}", "address": "local", "gpu": "none", "gpus": 0, "vcpus": vcpus,
         "memory_gib": 1, "price_per_hour": price, "workdir": str(tmp_path / "hosts"),
         "python": sys.executable}
        for i, (vcpus, price) in enumerate([(1, 0.1), (1, 0.1), (2, 0.3)])
    ]  # fmt: skip
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": hosts}))
    result = cherrypick.search(
        OnThisMachine(),
        "runtime",
        provider="cloud",
        providers=["ssh"],
        inventory=inventory,
        max_nodes=2,
        max_trials=3,
        min_trials=3,
        store=tmp_path / "s.sqlite",
        trial_timeout_s=120,
    )
    with TrialStore(tmp_path / "s.sqlite", create=False) as store:
        rows = store.trials()
        assert store.reservations() == {}
    assert [r.status for r in rows] == ["ok"] * 3, [r.message for r in rows]
    runtimes = {(r.candidate.instance_type, r.candidate.nodes): r.runtime_s for r in rows}
    assert sorted(runtimes.values()) == [1800.0, 1800.0, 3600.0]  # 2 nodes, or 2 threads: half
    assert result.recommendation is not None and result.recommendation.runtime_s == 1800.0
    assert not (tmp_path / "hosts").exists() or not any((tmp_path / "hosts").iterdir())
