"""The optimiser with a prior prediction of each candidate's runtime (a performance model's)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cherrypick.workloads.cnn.workload import CNNWorkload

from cherrypick.errors import InputError
from cherrypick.optimizer import (
    BayesianStrategy,
    Objective,
    Observation,
    Problem,
    StopRule,
    make_strategy,
)
from cherrypick.perfmodel import MEMORY_SIGMA, fit_probability, memory_parts


def _problem(
    prior_error: float, seed: int = 0, objective: Objective | None = None
) -> tuple[Problem, np.ndarray]:
    """Four "GPU types" x nodes 1..8; true runtime = model runtime x a per-type error."""
    rng = np.random.default_rng(seed)
    rows, model, truth, prices = [], [], [], []
    for speed, price in [(1.0, 1.0), (2.2, 2.0), (3.5, 3.6), (0.6, 0.55)]:
        error = math.exp(prior_error * rng.standard_normal())
        for nodes in range(1, 9):
            runtime = 100.0 + 36000.0 / (speed * nodes**0.9)
            rows.append([speed, price, nodes, speed * nodes])
            model.append(runtime)
            truth.append(runtime * error)
            prices.append(price * nodes)
    problem = Problem(
        np.array(rows),
        np.array(prices),
        objective or Objective(),
        prior_runtime_s=np.array(model),
    )
    return problem, np.array(truth)


def _costs(problem: Problem, runtimes: np.ndarray) -> np.ndarray:
    return np.asarray(problem.price_per_hour * runtimes / 3600)


def test_an_exact_prior_goes_straight_to_the_optimum() -> None:
    problem, runtimes = _problem(prior_error=0.0)
    search = make_strategy("cherrypick", problem, seed=0)
    (first,) = search.ask(1)
    assert first == int(np.argmin(_costs(problem, runtimes)))  # no space-filling design


def test_a_wrong_prior_is_corrected_by_the_trials() -> None:
    # Every "GPU type" is off by ~30%: the prior's favourite is not the cheapest.
    found = 0
    for seed in range(5):
        problem, runtimes = _problem(prior_error=0.3, seed=seed)
        costs = _costs(problem, runtimes)
        search = make_strategy("cherrypick", problem, seed=seed)
        for _ in range(8):
            (i,) = search.ask(1)
            search.tell(Observation(i, float(runtimes[i])))
        best = search.best()
        assert best is not None
        found += best.cost_usd <= 1.02 * costs.min()
    assert found >= 4


def test_predicted_failures_are_avoided_but_known_runs_are_not() -> None:
    problem, runtimes = _problem(prior_error=0.0)
    prior = problem.prior_runtime_s
    assert prior is not None
    cheapest = int(np.argmin(_costs(problem, runtimes)))
    prior = prior.copy()
    prior[cheapest] = np.nan  # the model says this one runs out of memory
    problem = Problem(problem.features, problem.price_per_hour, prior_runtime_s=prior)
    search = make_strategy("cherrypick", problem, seed=0)
    (first,) = search.ask(1)
    assert first != cheapest


def test_under_a_deadline_the_first_pick_is_cheap_and_likely_feasible() -> None:
    problem, runtimes = _problem(prior_error=0.0)
    deadline = float(np.quantile(runtimes, 0.5))
    problem = Problem(
        problem.features,
        problem.price_per_hour,
        Objective(max_runtime_s=deadline),
        prior_runtime_s=problem.prior_runtime_s,
    )
    costs = _costs(problem, runtimes)
    search = make_strategy("cherrypick", problem, seed=0)
    (first,) = search.ask(1)
    assert runtimes[first] <= deadline
    assert costs[first] <= 1.05 * costs[runtimes <= deadline].min()  # not the fastest, dearest


def test_recommendation_believes_twins_over_one_lucky_run() -> None:
    # 0 and 1 are twins (same features, same prior); 2 is another machine.
    features = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.5, 0.0], [0.0, 0.5]])
    prices = np.full(5, 3.6)
    prior = np.full(5, 1000.0)
    problem = Problem(features, prices, prior_runtime_s=prior)
    search = BayesianStrategy(problem, seed=0)
    for i, runtime in [(0, 900.0), (1, 1150.0), (2, 970.0)]:
        search.ask(1)  # keeps the ask/tell protocol; the tells below choose the data
        search.pending.clear()
        search.tell(Observation(i, runtime))
    best, recommended = search.best(), search.recommend()
    assert best is not None and recommended is not None
    assert best.index == 0  # the luckiest run
    assert recommended.index == 2  # the twins together say machine 0 runs ~1020 s


def test_without_a_prior_the_recommendation_is_the_best_run() -> None:
    problem, runtimes = _problem(prior_error=0.0)
    blind = Problem(problem.features, problem.price_per_hour)
    search = make_strategy("cherrypick", blind, seed=0, stop_rule=StopRule())
    for _ in range(7):
        (i,) = search.ask(1)
        search.tell(Observation(i, float(runtimes[i]) * (1.1 if i % 2 else 1.0)))
    assert search.recommend() == search.best()


@pytest.mark.parametrize(
    "prior", [np.full(3, 100.0), np.array([100.0, -1.0, 50.0, 10.0]), np.full(4, np.inf)]
)
def test_a_bad_prior_is_an_input_error(prior: np.ndarray) -> None:
    with pytest.raises(InputError, match="prior_runtime_s"):
        Problem(np.eye(4), np.ones(4), prior_runtime_s=prior)


def test_a_prior_that_predicts_only_failures_is_ignored() -> None:
    problem = Problem(np.eye(4), np.ones(4), prior_runtime_s=np.full(4, np.nan))
    assert BayesianStrategy(problem).prior is None


@pytest.mark.parametrize("residual", [True, False])
def test_latent_spread_leaves_out_exactly_the_fitted_noise(residual: bool) -> None:
    from cherrypick.optimizer._model import GaussianProcess

    rng = np.random.default_rng(3)
    x = rng.random((8, 2))
    y = 0.3 * x[:, 0] + 0.05 * rng.standard_normal(8)
    model = GaussianProcess(2, seed=0, linear=True, residual=residual)
    model.fit(x, y)
    _, std = model.predict(x)
    latent = model.latent(std)
    gp = model._gp
    assert gp is not None
    noise = gp.kernel_.k2.noise_level * (1.0 if residual else float(gp._y_train_std) ** 2)
    assert np.all(latent < std)
    np.testing.assert_allclose(latent**2, std**2 - noise, rtol=1e-9, atol=1e-12)
    if residual:  # the residual model's noise term is at least 5% (log units)
        assert np.all(std**2 - latent**2 >= 0.05**2 * (1 - 1e-9))


def _near_limit(fit: float) -> Problem:
    """Two GPU models x 1-4 nodes, equally fast; group 0 costs half as much, but the job may not
    fit in its memory (``prior_fit``), while it surely fits in group 1's."""
    rows, prior, prices, groups = [], [], [], []
    for group, price in enumerate((1.0, 2.0)):
        for nodes in (1, 2, 3, 4):
            rows.append([group, nodes])
            prior.append(100 + 36000 / nodes**0.9)
            prices.append(price * nodes)
            groups.append(group)
    labels = np.array(groups)
    return Problem(
        np.array(rows, dtype=float),
        np.array(prices),
        prior_runtime_s=np.array(prior),
        groups=labels,
        prior_fit=np.where(labels == 0, fit, 1.0),
    )


@pytest.mark.parametrize(("fit", "tried"), [(0.9, 1), (0.6, 1), (0.3, 2), (0.1, 2), (0.01, None)])
def test_a_candidate_near_the_memory_limit_is_tried_when_it_may_save_enough(
    fit: float, tried: int | None
) -> None:
    """Half the cost at good odds: first; at fair odds: right after a sure run has set the
    price to beat; at 1 in 100: never, and the search stops after its minimum trials."""
    problem = _near_limit(fit)
    assert problem.prior_runtime_s is not None
    search = BayesianStrategy(problem, seed=0, stop_rule=StopRule(min_trials=3))
    order: list[int] = []
    while not search.should_stop() and len(order) < 8:
        (i,) = search.ask(1)
        order.append(i)
        search.tell(Observation(i, float(problem.prior_runtime_s[i])))
    groups = [int(i >= 4) for i in order]
    assert (groups.index(0) + 1 if 0 in groups else None) == tried
    assert tried is not None or len(order) == 3


def test_a_completed_run_settles_its_groups_odds_and_a_failure_lowers_them() -> None:
    problem = _near_limit(0.3)
    everything = np.arange(problem.size)
    fits = BayesianStrategy(problem, seed=0)
    fits.tell(Observation(0, 1000.0))  # group 0 ran: the job fits its GPU
    np.testing.assert_array_equal(fits._p_complete(everything), np.ones(problem.size))
    fails = BayesianStrategy(problem, seed=0)
    fails.tell(Observation(0, None, ok=False))  # most likely it did not fit: 0.3 -> 0.04
    np.testing.assert_allclose(fails._prior_fit(everything), [0.03 / 0.73] * 4 + [1.0] * 4)
    p = np.asarray(fails._p_complete(everything))
    assert np.all(p[1:4] < 0.05) and np.all(p[4:] > 0.5)
    sure = BayesianStrategy(problem, seed=0)
    sure.tell(Observation(4, None, ok=False))  # the prior was sure group 1 fits: another cause
    np.testing.assert_allclose(sure._prior_fit(everything), [0.3] * 4 + [1.0] * 4)
    blind = BayesianStrategy(Problem(problem.features, problem.price_per_hour), seed=0)
    assert blind._p_complete(everything) == 1.0


@pytest.mark.parametrize(
    "fit", [np.full(3, 0.5), np.array([0.5, 1.5, 0.2, 0.1]), np.full(4, np.nan)]
)
def test_a_bad_prior_fit_is_an_input_error(fit: np.ndarray) -> None:
    with pytest.raises(InputError, match="prior_fit"):
        Problem(np.eye(4), np.ones(4), prior_fit=fit)


def _resnet(batch: int) -> CNNWorkload:
    return CNNWorkload({"model": "resnet50", "batch_size": batch, "precision": "fp16"})


def test_fit_probability_is_one_half_at_the_models_figure_and_falls_past_it() -> None:
    profile = _resnet(256).simulation_profile()
    counted, estimated = memory_parts(profile)
    need = counted + estimated
    assert fit_probability(profile, need) == pytest.approx(0.5)
    assert fit_probability(profile, counted) == 0.0  # the counted bytes alone fill it
    odds = [fit_probability(profile, need * f) for f in (0.9, 0.95, 1.05, 1.1, 1.5)]
    assert odds == sorted(odds) and 0 < odds[0] < 0.5 < odds[2] and odds[-1] > 0.99
    # Only the estimated overheads are uncertain: sigma 0.5 on them, not on the whole need.
    margin = need + estimated * (math.exp(MEMORY_SIGMA) - 1)
    assert fit_probability(profile, margin) == pytest.approx(0.8413, abs=1e-4)


def test_the_prior_gives_a_runtime_and_the_odds_near_a_memory_limit() -> None:
    from cherrypick.catalog import CatalogFilter, load_catalog, load_gpus
    from cherrypick.perfmodel import PerformanceModel
    from cherrypick.searching.setup import MIN_FIT, performance_prior

    gpus = load_gpus()
    candidates = CatalogFilter(providers=["aws"], gpus=["T4", "V100", "A10G"], max_nodes=1)
    chosen = candidates.candidates(load_catalog(["aws"], gpus=gpus), gpus)
    model = PerformanceModel(gpus)
    for batch in (256, 336, 1024):
        prior = performance_prior(chosen, _resnet(batch), gpus)
        assert prior is not None
        runtime, fits = prior
        for c, r, p in zip(chosen, runtime, fits, strict=True):
            prediction = model.predict(c, _resnet(batch).simulation_profile())
            assert (model.runtime(c, _resnet(batch)) is None) == prediction.oom  # the verdict
            assert math.isnan(r) == (p < MIN_FIT)
            assert math.isnan(r) or r == prediction.runtime_s
            assert (p < 0.5) == prediction.oom
    near = performance_prior(chosen, _resnet(336), gpus)
    assert near is not None
    sixteen = np.array([c.offering.gpu_memory_gib == 16 for c in chosen])
    assert np.all(np.isfinite(near[0][sixteen])) and np.all(near[1][sixteen] > MIN_FIT)
    assert np.all(near[1][sixteen] < 0.5) and np.all(near[1][~sixteen] > 0.99)


def test_a_searchs_problem_carries_the_runtimes_and_the_odds() -> None:
    from cherrypick.searching.setup import build_problem, build_space, performance_prior
    from cherrypick.spec import parse_spec

    params = {"model": "resnet50", "batch_size": 336, "precision": "fp16"}
    spec = parse_spec({"workload": {"name": "cnn", "params": params}, "filters": {"max_nodes": 1}})
    space, workload = build_space(spec), _resnet(336)
    problem = build_problem(space, Objective(), workload)
    prior = performance_prior(space.candidates, workload, space.gpus)
    assert prior is not None and problem.prior_fit is not None
    np.testing.assert_array_equal(problem.prior_runtime_s, prior[0])
    np.testing.assert_array_equal(problem.prior_fit, prior[1])
    assert 0 < np.mean(problem.prior_fit < 0.5) < 1  # some candidates near the line
    assert build_problem(space, Objective()).prior_fit is None
