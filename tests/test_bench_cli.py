"""``cherrypick bench NAME``: one convention for every benchmark's flags and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cherrypick.cli import main

TABLE = str(Path(__file__).resolve().parents[1] / "configs" / "replay" / "spark-sql.csv")
REPLAY = ["replay", "--table", TABLE, "--seeds", "1", "--budget", "2", "--jobs", "1"]
BOUND = ["stop-bound", "--table", TABLE, "--seeds", "1", "--budget", "2", "--jobs", "1"]
ASK = ["ask", "--strategy", "random", "--candidates", "40", "--features", "4"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Before, these two were checked only after every search had run.
        ([*REPLAY, "--print-n", "3,x"], "--print-n must be trial counts >= 1 separated by commas"),
        ([*REPLAY, "--json", "{tmp}"], "--json {tmp} is a folder"),
        ([*REPLAY, "--json", "{tmp}/no/r.json"], "--json {tmp}/no/r.json: no folder {tmp}/no"),
        ([*REPLAY, "--print-n", "0"], "--print-n must be trial counts >= 1"),
        ([*REPLAY, "--seeds", "0"], "--seeds must be >= 1, got 0"),
        ([*REPLAY, "--budget", "0"], "--budget must be >= 1, got 0"),
        ([*REPLAY, "--jobs", "0"], "--jobs must be >= 1, got 0"),
        ([*REPLAY, "--max-runtime", "0"], "--max-runtime must be > 0, got 0.0"),
        ([*REPLAY, "--feasible-fraction", "1.5"], "--feasible-fraction must be in (0, 1], got 1.5"),
        ([*REPLAY, "--stop-rule", "--min-trials", "0"], "--min-trials must be >= 1, got 0"),
        ([*REPLAY, "--stop-rule", "--ei-fraction", "-1"], "--ei-fraction must be >= 0, got -1.0"),
        ([*REPLAY, "--strategy", "random", "--strategy", "magic"], "unknown strategy 'magic'"),
        ([*BOUND, "--cost-fraction", "0"], "--cost-fraction must be > 0, got 0.0"),
        ([*BOUND, "--min-trials", "0"], "--min-trials must be >= 1, got 0"),
        ([*BOUND, "--json", "{tmp}"], "--json {tmp} is a folder"),
        (["dryrun", "--seeds", "0"], "--seeds must be >= 1, got 0"),
        (["dryrun", "--jobs", "0"], "--jobs must be >= 1, got 0"),
        (["dryrun", "--noise", "1.5"], "--noise must be in [0, 1], got 1.5"),
        (["dryrun", "--memory-error", "-0.1"], "--memory-error must be in [0, 1], got -0.1"),
        (["dryrun", "--ei-fraction", "-1"], "--ei-fraction must be >= 0, got -1.0"),
        (["dryrun", "--min-trials", "0"], "--min-trials must be >= 1, got 0"),
        (["dryrun", "--json", "{tmp}/no/d.json"], "--json {tmp}/no/d.json: no folder {tmp}/no"),
        ([*ASK, "--observations", "40"], "--observations must be between 1 and --candidates - 1"),
        ([*ASK, "--features", "0"], "--features must be >= 1, got 0"),
        ([*ASK, "--repeat", "0"], "--repeat must be >= 1, got 0"),
        ([*ASK, "--strategy", "magic"], "unknown strategy 'magic'; known: cheapest, cherrypick"),
        ([*ASK, "--json", "{tmp}"], "--json {tmp} is a folder"),
    ],
)
def test_a_bad_value_fails_in_one_line_naming_it_before_any_search(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *(a.format(tmp=tmp_path) for a in args)]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [err.strip()] and "searches" not in err
    assert err.startswith(f"cherrypick bench: error: {message.format(tmp=tmp_path)}")
    assert out == ""


def test_ask_times_every_strategy_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ask.json"
    args = [*ASK, "--strategy", "cheapest", "--observations", "5", "--repeat", "3"]
    assert main(["bench", *args, "--json", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for line, strategy in zip(lines[:2], ["random", "cheapest"], strict=True):
        assert line.startswith(
            f"ask(1) over 40 candidates x 4 features with 5 observations ({strategy}):"
        )
        assert line.endswith(" ms over 3 calls")
    assert lines[2:] == [f"wrote {path}"]
    timings = json.loads(path.read_text())
    assert [(t["strategy"], len(t["times_ms"])) for t in timings] == [
        ("random", 3),
        ("cheapest", 3),
    ]


def test_the_benchmark_command_is_gone_and_search_says_where_it_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["benchmark", "--table", TABLE])
    assert exit_.value.code == 2
    assert "invalid choice: 'benchmark'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "bench benchmarks of the search" in help_text
    assert "on your own machines over SSH" in help_text and "search the cloud" not in help_text
