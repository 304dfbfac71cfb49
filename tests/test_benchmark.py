"""The replay benchmark harness and ``cherrypick bench replay``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cherrypick.bench.replay import _summary, benchmark, run_search
from cherrypick.bench.tables import load_table
from cherrypick.cli import main
from cherrypick.optimizer import StopRule


def test_fixed_seed_cherrypick_beats_random(bundled_table: Path) -> None:
    workloads = load_table(bundled_table).select(None)
    result = benchmark(workloads, ["cherrypick", "random"], seeds=6, budget=8, jobs=1)
    at = {(r["strategy"], r["n"]): r for r in result.rows if r["workload"] == "ALL"}
    assert at[("cherrypick", 8)]["median"] < at[("random", 8)]["median"]
    assert at[("cherrypick", 8)]["p_opt"] > at[("random", 8)]["p_opt"]


def test_trace_is_monotone_and_normalised(bundled_table: Path) -> None:
    tpch = load_table(bundled_table).workloads["tpch"]
    trace = run_search(tpch, "random", seed=1, budget=tpch.size)
    assert np.all(np.diff(trace.normalised) <= 0)
    assert trace.normalised[-1] == 1.0  # trying everything finds the optimum
    assert trace.search_cost[-1] * tpch.optimum_cost(None) == pytest.approx(tpch.cost_usd.sum())


def test_percentiles_of_searches_that_found_nothing_feasible_are_infinite() -> None:
    # 19 searches found the optimum, one found nothing feasible (infinite normalised cost).
    values = np.array([1.0] * 19 + [np.inf])
    summary = _summary(values)
    assert summary["median"] == 1.0 and summary["p90"] == 1.0
    assert summary["p95"] == np.inf  # 95% of the way is between the last 1.0 and the inf
    assert summary["p_opt"] == 0.95
    finite = np.random.default_rng(0).lognormal(0.0, 0.3, size=37)
    assert _summary(finite)["p90"] == np.percentile(finite, 90)
    assert _summary(finite)["p95"] == np.percentile(finite, 95)


def test_deadline_and_stop_rule(bundled_table: Path) -> None:
    tpch = load_table(bundled_table).workloads["tpch"]
    deadline = float(np.quantile(tpch.runtime_s, 0.5))
    trace = run_search(tpch, "cherrypick", 0, 30, deadline, StopRule(0.10, 6))
    assert trace.stop_at is not None and 6 <= trace.stop_at <= 30
    assert len(trace.normalised) == min(30, tpch.size)  # the curve goes on past the stop
    assert trace.normalised[trace.stop_at - 1] >= 1.0
    plain = run_search(tpch, "cherrypick", 0, 30, deadline)
    assert np.array_equal(plain.normalised, trace.normalised)  # the rule changes no proposal


def test_command_writes_json_and_table(bundled_table: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "b.json"
    code = main(
        [
            "bench",
            "replay",
            "--table",
            str(bundled_table),
            "--workload",
            "tpch",
            "--strategy",
            "random",
            "--strategy",
            "cheapest",
            "--seeds",
            "3",
            "--budget",
            "5",
            "--feasible-fraction",
            "0.5",
            "--stop-rule",
            "--jobs",
            "1",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert {r["strategy"] for r in data["rows"]} == {"random", "cheapest"}
    assert [r["n"] for r in data["rows"] if r["strategy"] == "random"] == [1, 2, 3, 4, 5]
    assert set(data["rows"][0]) == {
        "workload",
        "strategy",
        "n",
        "median",
        "p90",
        "p95",
        "p_opt",
        "p_within_10",
        "search_cost",
    }
    assert set(data["stop"][0]) == {
        "workload",
        "strategy",
        "mean_trials",
        "median",
        "p90",
        "p_opt",
        "search_cost",
        "infeasible",
        "rule",
        "p_within_10",
    }
    printed = capsys.readouterr().out
    assert "normalised cost after N trials" in printed and "with the stop rule" in printed


def test_command_rejects_unknown_strategy(bundled_table: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["bench", "replay", "--table", str(bundled_table), "--strategy", "magic"]) == 2
    assert "unknown strategy 'magic'; known:" in capsys.readouterr().err
