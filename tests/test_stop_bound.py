"""The stop-rule bound: the oracle's greedy choice, and the command on the bundled table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cherrypick.bench.replay import run_search
from cherrypick.bench.stop_bound import first_optimum, oracle_share
from cherrypick.bench.tables import load_table
from cherrypick.cli import main

# Cumulative search cost of four searches over five trials, and the trial (0-based) at which each
# first tried the optimum: A at once, B late and dearly, C never, D a little after the minimum.
SPENT = np.array(
    [
        [1.0, 2.0, 3.0, 4.0, 5.0],
        [2.0, 4.0, 7.0, 9.0, 10.0],
        [1.0, 3.0, 4.0, 5.0, 6.0],
        [1.0, 2.0, 3.5, 4.0, 5.0],
    ]
)
FOUND = np.array([0, 3, -1, 2])


@pytest.mark.parametrize(
    ("limit", "min_trials", "share"),
    [
        (2.5, 2, None),  # two trials each already cost 11 > 4 x 2.5
        (3.5, 2, 0.5),  # room 3: A free, D's extra 1.5 fits, B's extra 5 does not
        (4.2, 2, 0.5),  # room 5.8 < 1.5 + 5
        (4.625, 2, 0.75),  # room 7.5: D and B
        (2.0, 1, 0.5),  # no minimum: room 3, D's extra 2.5
        (3.5, 1, 0.5),  # room 9 < 2.5 + 7
        (3.625, 1, 0.75),  # room 9.5: exactly D and B
    ],
)
def test_oracle_serves_the_cheapest_extra_spend_first(
    limit: float, min_trials: int, share: float | None
) -> None:
    assert oracle_share(SPENT, FOUND, limit, min_trials) == share


def test_oracle_bounds_every_fixed_stop(bundled_table: Path) -> None:
    w = load_table(bundled_table).select(None)[0]
    traces = [run_search(w, "random", seed, 8) for seed in range(20)]
    spent = np.array([t.search_cost for t in traces])
    found = np.array([first_optimum(t) for t in traces])
    for t, f in zip(traces, found, strict=True):
        # the optimum is held from the first trial that tried it on, and never before
        assert (t.normalised[f:] == 1.0).all() if f >= 0 else (t.normalised > 1.0).all()
        assert f < 0 or f == 0 or t.normalised[f - 1] > 1.0
    for n in range(8):
        limit = float(spent[:, n].mean())
        fixed = float(np.mean((found >= 0) & (found <= n)))
        assert oracle_share(spent, found, limit, n + 1) >= fixed  # type: ignore[operator]


def test_command_prints_the_limit_of_the_table_and_writes_json(
    bundled_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "bound.json"
    args = ["--table", str(bundled_table), "--seeds", "3", "--budget", "6", "--strategy", "random"]
    code = main(["bench", "stop-bound", *args, "--jobs", "1", "--json", str(out_json)])
    assert code == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0].split()[:3] == ["workload", "strategy", "limit"]
    w = load_table(bundled_table).select(None)
    assert len(out) == 1 + len(w) + 1 and out[-1] == f"wrote {out_json}"
    for line, workload in zip(out[1:-1], w, strict=True):
        fields = line.split()
        exhaustive = workload.cost_usd.sum() / workload.optimum_cost(None)
        assert fields[0] == workload.name and fields[1] == "random"
        assert float(fields[2]) == pytest.approx(exhaustive / 8, abs=0.05)
    rows = json.loads(out_json.read_text())
    assert [(r["workload"], r["strategy"]) for r in rows] == [(x.name, "random") for x in w]
    assert [f"{r['limit']:.1f}" for r in rows] == [line.split()[2] for line in out[1:-1]]
    assert "searches 6/6" in captured.err  # 2 workloads x 3 seeds, progress as replay's
