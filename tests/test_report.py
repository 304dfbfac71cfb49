"""Reports over real stores: the frame, the recommendation, the Pareto front, files and the CLI."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from cherrypick.cli import main
from cherrypick.report import (
    Report,
    ReportFiles,
    format_table,
    load_report,
    pareto_front,
    plot_breakdown,
    recommendation,
    summary,
    trials_frame,
    write_report,
)
from cherrypick.store import TrialRow, TrialStore
from cherrypick.trials import CandidateRecord

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOUR = 3600.0
LAYERS = [
    {"name": "conv1", "forward_ms": 2.0, "backward_ms": 4.0, "params": 9408},
    {"name": "layer1.0.conv1", "forward_ms": 1.0, "backward_ms": 2.5},
]
BREAKDOWN = {"data": 1.0, "h2d": 0.5, "forward": 3.0, "backward": 6.5, "optimizer": 0.8}

# (status, runtime in hours, cost in dollars) per trial; the deadline is 10 h.
TRIALS: list[tuple[str, float | None, float | None]] = [
    ("ok", 12.0, 30.0),  # 0: cheapest, but over the deadline
    ("ok", 8.0, 80.0),  # 1: first feasible
    ("oom", None, None),  # 2
    ("ok", 4.0, 60.0),  # 3: better
    ("ok", 9.0, 70.0),  # 4: feasible, not better
    ("ok", 3.0, 60.0),  # 5: same cost as 3, faster: the recommendation
    ("error", None, None),  # 6
]


def candidate(i: int) -> CandidateRecord:
    return CandidateRecord(
        provider="gcp",
        region="us-central1",
        instance_type=f"a2-highgpu-{i}g",
        gpu="A100",
        gpus_per_node=i + 1,
        nodes=2,
        price_per_hour=3.5 * (i + 1),
    )


def fill(store: TrialStore, trials: list[tuple[str, float | None, float | None]]) -> None:
    for i, (status, hours, cost) in enumerate(trials):
        store.start_trial(i, f"key{i}", candidate(i))
        runtime = None if hours is None else hours * HOUR
        result = {"layers": LAYERS, "breakdown_ms": BREAKDOWN} if status == "ok" else None
        message = "" if status == "ok" else f"{status} on trial {i}"
        store.finish_trial(i, status, runtime, cost, 0.5, result, message)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "search.db"
    with TrialStore(path) as store:
        store.begin({"objective": {"kind": "cost", "max_runtime_s": 10 * HOUR}}, seed=5)
        fill(store, TRIALS)
    return path


@pytest.fixture(scope="module")
def files(store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return write_report(store_path, tmp_path_factory.mktemp("out"), html=True)


def rows_of(points: list[tuple[str, float | None, float | None]]) -> list[TrialRow]:
    return [
        TrialRow(
            i, f"k{i}", candidate(i), s, None if h is None else h * HOUR, c, None, None, "", 0, 1
        )
        for i, (s, h, c) in enumerate(points)
    ]


def test_frame_has_one_row_per_trial_with_feasibility(store_path: Path) -> None:
    with TrialStore(store_path) as store:
        frame = trials_frame(store)
    assert list(frame.columns) == [
        "trial_id", "provider", "region", "instance_type", "gpu", "gpus_per_node", "nodes",
        "price_per_hour", "status", "runtime_s", "cost_usd", "search_cost_usd", "feasible",
        "best_so_far", "message",
    ]  # fmt: skip
    assert frame["trial_id"].tolist() == list(range(7))
    assert frame["status"].tolist() == [t[0] for t in TRIALS]
    assert frame["feasible"].tolist() == [False, True, False, True, True, True, False]
    assert frame.loc[3, "runtime_s"] == 4 * HOUR and frame.loc[3, "cost_usd"] == 60.0
    assert frame.loc[3, "instance_type"] == "a2-highgpu-3g" and frame.loc[3, "nodes"] == 2
    assert math.isnan(frame.loc[2, "runtime_s"])
    assert frame.loc[6, "message"] == "error on trial 6"


def test_best_so_far_is_the_running_best_feasible_value(store_path: Path) -> None:
    with TrialStore(store_path) as store:
        best = trials_frame(store)["best_so_far"]
    assert math.isnan(best[0])  # trial 0 beats everything on cost but misses the deadline
    assert best[1:].tolist() == [80.0, 80.0, 60.0, 60.0, 60.0, 60.0]
    assert best[1:].is_monotonic_decreasing


def test_objective_runtime_under_a_cost_limit() -> None:
    rows = rows_of(TRIALS)
    frame = trials_frame(rows, {"kind": "runtime", "max_cost_usd": 65.0})
    assert frame["feasible"].tolist() == [True, False, False, True, False, True, False]
    assert frame["best_so_far"].tolist() == [12 * HOUR] * 3 + [4 * HOUR] * 2 + [3 * HOUR] * 2
    rec = recommendation(rows, {"kind": "runtime", "max_cost_usd": 65.0})
    assert rec is not None and rec.trial_id == 5


def test_recommendation_breaks_ties_by_the_other_quantity(store_path: Path) -> None:
    with TrialStore(store_path) as store:
        rec = recommendation(store)
    assert rec is not None and rec.trial_id == 5  # trials 3 and 5 cost the same; 5 is faster
    assert recommendation(rows_of([("oom", None, None)])) is None


def test_the_searchs_own_recommendation_wins(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with TrialStore(path) as store:
        store.begin({"objective": {"kind": "cost", "max_runtime_s": 10 * HOUR}}, seed=5)
        fill(store, TRIALS)
        store.finish(
            "finished",
            {"recommendation": {"trial_id": 3}, "stopped_because": "expected improvement < 10%"},
        )
    report = load_report(path)
    assert report.recommendation is not None and report.recommendation.trial_id == 3
    assert report.search_status == "finished"
    assert "(trial 3)" in summary(report)
    assert "no per-layer timings" not in summary(report)
    assert "\nstopped: expected improvement < 10%\n" in summary(report)


def test_summary_says_when_the_recommendation_has_no_layers() -> None:
    rows = rows_of([("ok", 1.0, 2.0)])  # its result is None
    report = Report(Path("s.db"), trials_frame(rows), rows[0], "finished")
    assert "has no per-layer timings" in summary(report)


def test_pareto_front_on_a_hand_made_set() -> None:
    points: list[tuple[str, float | None, float | None]] = [
        ("ok", 1.0, 10.0),  # 0 front
        ("ok", 2.0, 5.0),  # 1 front
        ("ok", 2.0, 6.0),  # 2 same runtime as 1, dearer
        ("ok", 3.0, 5.0),  # 3 same cost as 1, slower
        ("ok", 4.0, 2.0),  # 4 front
        ("ok", 0.5, 20.0),  # 5 front: fastest
        ("ok", 4.0, 2.0),  # 6 twin of 4: nobody beats it either
        ("oom", None, None),  # 7 no point at all
        ("ok", 5.0, 3.0),  # 8 beaten by 4
    ]
    front = pareto_front(trials_frame(rows_of(points)))
    assert front["trial_id"].tolist() == [5, 0, 1, 4, 6]


def test_files_are_written_and_pngs_are_images(files: ReportFiles) -> None:
    assert [p.name for p in files.paths()] == [
        "trials.csv", "convergence.png", "cost_runtime.png", "breakdown.png", "report.html",
    ]  # fmt: skip
    for png in (files.convergence, files.cost_runtime, files.breakdown):
        assert png.read_bytes().startswith(PNG_SIGNATURE)
        height, width, channels = matplotlib.image.imread(png).shape
        assert height > 200 and width > 400 and channels in (3, 4)
    csv = pd.read_csv(files.csv)
    assert csv["trial_id"].tolist() == list(range(7))
    assert csv.loc[5, "cost_usd"] == 60.0


def test_html_is_one_self_contained_page(files: ReportFiles) -> None:
    assert files.html is not None
    page = files.html.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3
    assert all(base64.b64decode(i).startswith(PNG_SIGNATURE) for i in images)
    assert 'src="http' not in page and "<link" not in page
    assert '<table class="dataframe trials">' in page and page.count("<tr>") >= 7
    assert page.index("recommendation: gcp us-central1 a2-highgpu-5g") < page.index("<img")


def test_breakdown_without_layers_says_so_instead_of_failing(tmp_path: Path) -> None:
    for name, result in [
        ("none", None),
        ("empty", {}),
        ("parts_only", {"breakdown_ms": BREAKDOWN}),
        ("layers_only", {"layers": LAYERS * 30}),
    ]:
        png = plot_breakdown(result, tmp_path / f"{name}.png")
        assert png.read_bytes().startswith(PNG_SIGNATURE)


def test_a_search_without_trials_still_reports(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    with TrialStore(path) as store:
        store.begin({"objective": {"kind": "cost", "max_runtime_s": None}}, seed=0)
    files = write_report(path, tmp_path / "out", html=True)
    assert all(p.stat().st_size > 0 for p in files.paths())
    assert "recommendation: none" in summary(load_report(path))
    assert "stopped:" not in summary(load_report(path))  # it has not


def test_format_table_is_readable(store_path: Path) -> None:
    text = format_table(load_report(store_path).frame)
    assert "message" not in text and "error on trial 6" not in text
    assert "12h00m" in text and "60.00" in text


def test_cli_prints_the_table_and_writes_the_files(
    store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "table.csv"
    assert main(["report", str(store_path), "--out", str(tmp_path / "r"), "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "a2-highgpu-5g" in out and "recommendation:" in out
    assert f"wrote {csv}" in out and csv.is_file()
    assert (tmp_path / "r" / "cost_runtime.png").is_file()
    assert not (tmp_path / "r" / "report.html").exists()


def test_cli_missing_store_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nope.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no trial store at" in err
    assert not (tmp_path / "nope.db").exists()
