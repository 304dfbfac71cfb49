"""The comparison with published training throughput: its data, its table and its command.

The mean absolute error itself is a target that ``python -m cherrypick.perfmodel.published``
prints (docs/perfmodel.md); it is not asserted here.
"""

from __future__ import annotations

import math

import pytest
from cherrypick.providers.base import Candidate, Offering
from cherrypick.workloads.cnn.arch import MODELS
from cherrypick.workloads.cnn.workload import CNNWorkload

from cherrypick.catalog import load_gpus
from cherrypick.perfmodel import PerformanceModel
from cherrypick.perfmodel.published import (
    POINTS,
    SOURCES,
    Point,
    compare,
    main,
    mean_abs_error,
    table,
)

GPUS = load_gpus()


def test_every_point_names_a_known_gpu_model_and_precision() -> None:
    for point in POINTS:
        assert point.gpu in GPUS, point
        assert point.model in MODELS, point
        assert point.precision in ("fp32", "fp16", "bf16"), point
        assert point.batch_size > 0 and point.images_per_s > 0 and point.gpus >= 1, point


def test_every_source_has_a_name_url_and_setup() -> None:
    assert {point.source for point in POINTS} <= set(SOURCES.values())
    for source in SOURCES.values():
        assert source.name.strip() and source.files.strip() and source.setup.strip()
        assert source.url.startswith("https://github.com/"), source.url
        assert " " not in source.url, source.url


def test_the_table_builds_for_every_point_with_positive_predictions() -> None:
    rows = compare()
    assert [row.point for row in rows] == list(POINTS)
    for row in rows:
        assert math.isfinite(row.predicted_images_per_s) and row.predicted_images_per_s > 0
        assert not row.oom, row.point  # every published run fitted, and so must the model's
    assert mean_abs_error(rows) == pytest.approx(
        sum(abs(r.predicted_images_per_s / r.point.images_per_s - 1) for r in rows) / len(rows)
    )
    lines = table(rows)
    assert len(lines) == len(POINTS) + 2
    assert lines[-1].startswith("mean absolute error: ")


def test_prediction_leaves_out_the_host_copy_the_sources_did_not_make() -> None:
    point = next(p for p in POINTS if p.gpu == "V100" and p.precision == "fp16")
    (row,) = compare([point])
    profile = CNNWorkload(
        {"model": point.model, "batch_size": point.batch_size, "precision": "fp16"}
    ).simulation_profile()
    offering = Offering("x", "x", "x", 8, 64.0, "V100", 1, 16.0, "nvlink", 1.0)
    full = PerformanceModel(GPUS).predict(Candidate(offering), profile)
    assert full.breakdown_s["h2d"] > 0
    gpu_side = full.iteration_s - full.breakdown_s["h2d"]
    assert row.predicted_images_per_s == pytest.approx(point.batch_size / gpu_side)


def test_channels_last_points_are_predicted_faster_than_the_same_run_in_nchw() -> None:
    nhwc = next(p for p in POINTS if p.channels_last)
    nchw = Point(nhwc.gpu, nhwc.model, nhwc.precision, nhwc.batch_size, 1.0, nhwc.source)
    fast, slow = compare([nhwc, nchw])
    assert fast.predicted_images_per_s > slow.predicted_images_per_s


def test_command_prints_the_table_and_the_mean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[: len(POINTS) + 2] == table(compare())
    for source in SOURCES.values():
        assert f"  {source.name}: {source.url} ({source.files})" in out
