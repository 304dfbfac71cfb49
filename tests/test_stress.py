"""The stress suite: every family has the shape it claims, measured on its generated table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from cherrypick.bench.stress import (
    DEFAULT_SEED,
    FAMILIES,
    StressCase,
    grid_neighbours,
    select_stress,
    stress_cases,
    stress_workloads,
    write_tables,
)
from cherrypick.bench.tables import ReplayWorkload, load_table
from cherrypick.cli import main
from cherrypick.errors import UnknownNameError

SEED = int(os.environ.get("STRESS_SEED", DEFAULT_SEED))


@pytest.fixture(scope="module")
def suite() -> list[tuple[StressCase, ReplayWorkload]]:
    return list(zip(stress_cases(SEED), stress_workloads(SEED), strict=True))


def _family(
    suite: list[tuple[StressCase, ReplayWorkload]], family: str
) -> Iterator[tuple[StressCase, ReplayWorkload]]:
    chosen = [(c, w) for c, w in suite if c.family == family]
    assert len(chosen) >= 3
    yield from chosen


def _column(w: ReplayWorkload, name: str) -> NDArray[np.float64]:
    return np.array([float(c[name]) for c in w.configs])


def _total_mem(w: ReplayWorkload) -> NDArray[np.float64]:
    return _column(w, "mem_gib_per_node") * _column(w, "nodes")


def _optimum(w: ReplayWorkload) -> int:
    return int(np.argmin(np.where(w.completed, w.cost_usd, np.inf)))


def _rows(w: ReplayWorkload, **values: str) -> NDArray[np.bool_]:
    return np.array([all(c[k] == v for k, v in values.items()) for c in w.configs])


def test_the_suite_has_every_family_with_distinct_instances_on_a_scout_like_grid(
    suite: list[tuple[StressCase, ReplayWorkload]],
) -> None:
    names = [w.name for _, w in suite]
    assert names == [f"{f}/{i}" for f in FAMILIES for i in range(3)]
    for _, w in suite:
        assert 60 <= w.size <= 120
        assert {c["vm_family"] for c in w.configs} == {"c4", "m4", "r4", "i3"}
    for family in FAMILIES:
        runtimes = [w.runtime_s for _, w in _family(suite, family)]
        assert not np.allclose(runtimes[0], runtimes[1])


def test_prices_are_aws_list_prices(suite: list[tuple[StressCase, ReplayWorkload]]) -> None:
    w = suite[0][1]
    per_node = w.price_per_hour / _column(w, "nodes")
    price = {c["vm_type"]: float(p) for c, p in zip(w.configs, per_node, strict=True)}
    assert price["c4.2xlarge"] == pytest.approx(0.398)
    assert price["m4.xlarge"] == pytest.approx(0.20)
    assert price["r4.large"] == pytest.approx(0.133, abs=1e-3)
    assert price["i3.2xlarge"] == pytest.approx(0.624)


@pytest.mark.parametrize("family", ["cliff-one", "cliff-several"])
def test_a_cliff_is_5x_slower_just_below_its_threshold_than_just_above(
    suite: list[tuple[StressCase, ReplayWorkload]], family: str
) -> None:
    steps = 0
    for case, w in _family(suite, family):
        mem, nodes = _total_mem(w), _column(w, "nodes")
        for machine, threshold in case.cliffs.items():
            for size in ("large", "xlarge", "2xlarge"):
                rows = _rows(w, vm_family=machine, vm_size=size)
                below = np.flatnonzero(rows & (mem < threshold))
                above = np.flatnonzero(rows & (mem >= threshold))
                if len(below) and len(above):
                    just_below, just_above = below[-1], above[0]
                    assert nodes[just_below] < nodes[just_above]
                    assert w.runtime_s[just_below] >= 5 * w.runtime_s[just_above]
                    steps += 1
    assert steps >= 3


def test_cliff_several_steps_several_families_at_their_own_thresholds(
    suite: list[tuple[StressCase, ReplayWorkload]],
) -> None:
    for case, _ in _family(suite, "cliff-several"):
        assert len(case.cliffs) >= 2
        assert len(set(case.cliffs.values())) == len(case.cliffs)


def test_cliff_one_puts_the_optimum_just_past_the_cliff_among_dear_neighbours(
    suite: list[tuple[StressCase, ReplayWorkload]],
) -> None:
    for case, w in _family(suite, "cliff-one"):
        ((machine, threshold),) = case.cliffs.items()
        best = _optimum(w)
        mem = _total_mem(w)
        assert w.configs[best]["vm_family"] == machine and mem[best] >= threshold
        below = [j for j in grid_neighbours(best) if mem[j] < threshold]
        assert below, "the optimum has a neighbour below the cliff"
        assert all(w.cost_usd[j] >= 3 * w.cost_usd[best] for j in below)
        other = ~_rows(w, vm_family=machine)
        assert w.cost_usd[other].min() / w.cost_usd[best] > 1.0


def test_the_failures_cluster_around_the_optimum(
    suite: list[tuple[StressCase, ReplayWorkload]],
) -> None:
    for _, w in _family(suite, "failure-cluster"):
        failed = set(np.flatnonzero(~w.completed).tolist())
        assert len(failed) >= 3
        assert failed <= set(grid_neighbours(_optimum(w)))
        assert (w.runtime_s[~w.completed] > w.runtime_s[_optimum(w)]).all()


def test_comm_bound_runtime_falls_then_rises_with_nodes_for_every_machine_type(
    suite: list[tuple[StressCase, ReplayWorkload]],
) -> None:
    for _, w in _family(suite, "comm-bound"):
        nodes = _column(w, "nodes")
        for vm_type in {c["vm_type"] for c in w.configs}:
            rows = np.flatnonzero(_rows(w, vm_type=vm_type))
            runtime = w.runtime_s[rows[np.argsort(nodes[rows])]]
            assert 0 < int(np.argmin(runtime)) < len(runtime) - 1, vm_type
            assert runtime[-1] > 1.1 * runtime.min()


def test_near_ties_spread_across_the_grid(suite: list[tuple[StressCase, ReplayWorkload]]) -> None:
    for _, w in _family(suite, "near-ties"):
        best = _optimum(w)
        ties = np.flatnonzero(w.cost_usd <= 1.03 * w.cost_usd[best])
        ties = ties[ties != best]
        assert len(ties) >= 3
        assert len({w.configs[i]["vm_type"] for i in ties}) >= 3
        assert not set(ties.tolist()) & set(grid_neighbours(best))


@pytest.mark.parametrize(
    ("family", "sigma"), [("noise-2", 0.02), ("noise-5", 0.05), ("noise-10", 0.10)]
)
def test_the_measured_noise_is_the_family_s(
    suite: list[tuple[StressCase, ReplayWorkload]], family: str, sigma: float
) -> None:
    residuals = [np.log(w.runtime_s / c.clean_runtime_s) for c, w in _family(suite, family)]
    assert np.std(np.concatenate(residuals)) == pytest.approx(sigma, rel=0.15)


def test_the_same_seed_gives_the_same_tables_and_another_seed_others() -> None:
    again, other = stress_workloads(SEED), stress_workloads(SEED + 1)
    for a, b, c in zip(stress_workloads(SEED), again, other, strict=True):
        assert a.configs == b.configs
        assert np.array_equal(a.runtime_s, b.runtime_s)
        assert np.array_equal(a.completed, b.completed)
        assert not np.allclose(a.runtime_s, c.runtime_s)


def test_the_written_tables_load_as_the_suite(tmp_path: Path) -> None:
    paths = write_tables(tmp_path / "out", SEED)
    assert [p.name for p in paths] == [f"stress-{f}.csv" for f in FAMILIES]
    loaded = [w for p in paths for w in load_table(p).workloads.values()]
    for a, b in zip(loaded, stress_workloads(SEED), strict=True):
        assert a.name == b.name and a.configs == b.configs and a.feature_names == b.feature_names
        for field in ("features", "price_per_hour", "runtime_s", "completed", "cost_usd"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field


def test_select_by_name_or_family() -> None:
    workloads = stress_workloads(SEED)
    assert [w.name for w in select_stress(workloads, ["noise-5", "cliff-one/2"])] == [
        "noise-5/0",
        "noise-5/1",
        "noise-5/2",
        "cliff-one/2",
    ]
    assert select_stress(workloads, None) == workloads
    with pytest.raises(UnknownNameError, match="known: cliff-one, cliff-one/0"):
        select_stress(workloads, ["cliff"])


def test_replay_runs_the_suite_from_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--seeds", "1", "--budget", "3", "--strategy", "random", "--jobs", "1"]
    assert main(["bench", "replay", "--suite", "stress", "--workload", "noise-2", *args]) == 0
    out = capsys.readouterr().out
    rows = [ln.split() for ln in out.splitlines()]
    assert ["noise-2/0", "random", "3"] in [r[:3] for r in rows]
    assert ["noise-2", "random", "3"] in [r[:3] for r in rows]  # the family, pooled


def test_an_unknown_workload_fails_in_one_line_with_the_known_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "replay", "--suite", "stress", "--workload", "magic"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "unknown workload 'magic'; known: cliff-one" in err and "noise-10/2" in err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "one of the arguments --suite --table is required"),
        (["--suite", "stress", "--table", "t.csv"], "--table: not allowed with argument --suite"),
    ],
)
def test_table_and_suite_exclude_each_other(
    capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "replay", *args])
    assert exit_.value.code == 2
    assert said in capsys.readouterr().err


def test_stress_tables_writes_the_csvs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "stress-tables", "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"stress-{f}.csv" for f in FAMILIES)
    assert capsys.readouterr().out.splitlines()[0] == f"wrote {tmp_path / 'stress-cliff-one.csv'}"
    blocked = tmp_path / "stress-noise-2.csv" / "x"
    assert main(["bench", "stress-tables", "--out", str(blocked)]) == 2
    assert "cannot write the stress tables" in capsys.readouterr().err
