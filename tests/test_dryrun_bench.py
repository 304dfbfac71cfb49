"""The dry-run accuracy benchmark's scoring: which recommendations count as close to the optimum."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cherrypick.bench.dryrun import Outcome, _example, _summary
from cherrypick.bench.exhaustive import evaluate_all, runtime_of, true_choice
from cherrypick.searching.setup import build_providers, build_space, build_workload, objective_of
from cherrypick.spec import parse_spec


def _outcome(gap: float | None, late: bool = False) -> Outcome:
    return Outcome("alexnet-10class", 0.3, 0, gap, gap, 8, False, late)


@pytest.mark.parametrize(
    ("gap", "late", "close"),
    [
        (0.0, False, True),
        (0.05, False, True),
        (0.051, False, False),
        (None, False, False),
        # Cheaper than the optimum only because it truly misses the deadline: a miss, not a hit.
        (-0.10, True, False),
    ],
)
def test_a_recommendation_is_close_only_within_5_percent_and_truly_in_time(
    gap: float | None, late: bool, close: bool
) -> None:
    assert _outcome(gap, late).close is close


def test_summary_counts_truly_late_recommendations_as_misses() -> None:
    outcomes = [_outcome(0.0), _outcome(0.0), _outcome(-0.2, late=True), _outcome(0.2)]
    line = _summary("case", outcomes)
    assert "within 5%:  50.0%" in line
    assert "(truly 1)" in line


def test_summary_prints_how_often_the_noisy_sweep_itself_is_close() -> None:
    outcomes = [replace(_outcome(0.0), sweep_close=s) for s in (True, False, False, None)]
    assert "the noisy sweep itself  25.0%" in _summary("case", outcomes)


def test_a_sweeps_best_run_is_judged_as_the_machines_truly_run() -> None:
    spec = parse_spec({**_example("resnet50-imagenet").model_dump(mode="json"), "seed": 3})
    space, workload = build_space(spec), build_workload(spec)
    candidates = space.catalog
    noisy = build_providers(space, True, spec)
    truth = build_providers(space, True, spec, run_noise=False)
    best = evaluate_all(candidates, workload, noisy, objective_of(spec), spec.trial_timeout_s)
    assert best is not None
    judged = true_choice(best, candidates, workload, truth)
    assert judged is not None and judged.instance_type == best.instance_type
    (candidate,) = [
        c
        for c in candidates
        if (c.offering.region, c.offering.instance_type, c.nodes)
        == (best.region, best.instance_type, best.nodes)
    ]
    true_runtime = runtime_of(candidate, workload, truth, spec.trial_timeout_s)
    assert judged.runtime_s == pytest.approx(true_runtime)
    assert judged.runtime_s != pytest.approx(best.runtime_s, rel=1e-6)  # one run's noise removed
    assert judged.cost_usd == pytest.approx(best.cost_usd * judged.runtime_s / best.runtime_s)
    assert (
        true_choice(replace(best, instance_type="no-such-type"), candidates, workload, truth)
        is None
    )
