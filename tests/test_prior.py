"""The optimiser with a prior prediction of each candidate's runtime (a performance model's)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cherrypick.errors import InputError
from cherrypick.optimizer import (
    BayesianStrategy,
    Objective,
    Observation,
    Problem,
    StopRule,
    make_strategy,
)


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
