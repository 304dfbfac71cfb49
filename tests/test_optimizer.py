"""The ask/tell strategies on synthetic problems with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cherrypick.errors import InputError, UnknownNameError
from cherrypick.optimizer import (
    BayesianStrategy,
    BOConfig,
    Objective,
    Observation,
    Problem,
    StopRule,
    make_strategy,
    strategy_registry,
)


def _cluster_problem(objective: Objective | None = None) -> tuple[Problem, np.ndarray]:
    """Nodes 1..12 of three VM sizes: runtime = 200 + 3600 / (nodes x cores); price ~ size."""
    rows, runtimes = [], []
    for cores in (2, 4, 8):
        for nodes in range(1, 13):
            rows.append([math.log(nodes), math.log(cores), math.log(nodes * cores)])
            runtimes.append(200.0 + 36000.0 / (nodes * cores))
    features = np.array(rows)
    prices = np.array([p * n for p in (0.1, 0.19, 0.4) for n in range(1, 13)])
    return Problem(features, prices, objective or Objective()), np.array(runtimes)


def _run(strategy: BayesianStrategy | object, runtimes: np.ndarray, trials: int) -> None:
    for _ in range(trials):
        (i,) = strategy.ask(1)  # type: ignore[attr-defined]
        strategy.tell(Observation(i, float(runtimes[i])))  # type: ignore[attr-defined]


def test_cherrypick_finds_the_cheapest_configuration() -> None:
    problem, runtimes = _cluster_problem()
    costs = problem.price_per_hour * runtimes / 3600
    search = make_strategy("cherrypick", problem, seed=3)
    _run(search, runtimes, 10)
    best = search.best()
    assert best is not None
    assert best.cost_usd <= 1.05 * costs.min()


def test_deadline_is_respected() -> None:
    problem, runtimes = _cluster_problem()
    deadline = float(np.quantile(runtimes, 0.3))
    problem = Problem(problem.features, problem.price_per_hour, Objective(max_runtime_s=deadline))
    search = make_strategy("cherrypick", problem, seed=1)
    _run(search, runtimes, 12)
    best = search.best()
    assert best is not None and best.runtime_s <= deadline
    costs = problem.price_per_hour * runtimes / 3600
    assert best.cost_usd <= 1.10 * costs[runtimes <= deadline].min()


def test_runtime_objective_with_cost_limit() -> None:
    problem, runtimes = _cluster_problem()
    costs = problem.price_per_hour * runtimes / 3600
    limit = float(np.quantile(costs, 0.5))
    problem = Problem(
        problem.features, problem.price_per_hour, Objective("runtime", max_cost_usd=limit)
    )
    search = make_strategy("cherrypick", problem, seed=2)
    _run(search, runtimes, 12)
    best = search.best()
    assert best is not None and best.cost_usd <= limit
    assert best.runtime_s <= 1.10 * runtimes[costs <= limit].min()


def test_batch_proposals_are_distinct_and_new() -> None:
    problem, runtimes = _cluster_problem()
    search = make_strategy("cherrypick", problem, seed=0)
    _run(search, runtimes, 4)
    batch = search.ask(5)
    assert len(set(batch)) == 5
    assert not set(batch) & set(search.observations)
    assert set(search.ask(3)).isdisjoint(batch)  # pending ones are not proposed twice


def test_failed_candidates_are_never_proposed_again_nor_recommended() -> None:
    problem, runtimes = _cluster_problem()
    search = make_strategy("cherrypick", problem, seed=5)
    failed = set()
    for _ in range(problem.size):
        (i,) = search.ask(1)
        assert i not in failed and i not in search.observations
        if i % 3 == 0:
            failed.add(i)
            search.tell(Observation(i, None, ok=False))
        else:
            search.tell(Observation(i, float(runtimes[i])))
    best = search.best()
    assert best is not None and best.index not in failed
    assert search.should_stop()  # nothing left to try


def test_a_failure_makes_its_neighbours_look_worse() -> None:
    problem, runtimes = _cluster_problem()
    observed = [0, 5, 17, 30]
    near = 13  # 2 nodes x 4 cores, next to index 12 (1 node x 4 cores)

    def predicted_log_cost(fail: bool) -> float:
        s = BayesianStrategy(problem, seed=0)
        for i in observed:
            s.tell(Observation(i, float(runtimes[i])))
        s.tell(Observation(12, None if fail else float(runtimes[12]), ok=not fail))
        scores = s.scores()
        return float(scores.log_cost[list(scores.indices).index(near)])

    assert predicted_log_cost(fail=True) > predicted_log_cost(fail=False)


def test_stop_rule_waits_for_min_trials_then_stops() -> None:
    problem, runtimes = _cluster_problem()
    search = make_strategy("cherrypick", problem, seed=4, stop_rule=StopRule(0.10, min_trials=6))
    stops = []
    for _ in range(20):
        stops.append(search.should_stop())
        (i,) = search.ask(1)
        search.tell(Observation(i, float(runtimes[i])))
    assert not any(stops[:6])
    assert any(stops)


def test_stop_rule_threshold_zero_never_stops_early() -> None:
    problem, runtimes = _cluster_problem()
    search = make_strategy("cherrypick", problem, seed=4, stop_rule=StopRule(0.0, min_trials=1))
    _run(search, runtimes, 10)
    assert not search.should_stop()


def test_stop_rule_gives_up_on_a_deadline_nothing_can_meet() -> None:
    problem, runtimes = _cluster_problem()

    def search_until_stop(deadline: float) -> tuple[BayesianStrategy, int]:
        objective = Objective(max_runtime_s=deadline)
        constrained = Problem(problem.features, problem.price_per_hour, objective)
        search = BayesianStrategy(constrained, seed=5, stop_rule=StopRule(0.10, min_trials=6))
        for n in range(1, problem.size + 1):
            (i,) = search.ask(1)
            search.tell(Observation(i, float(runtimes[i])))
            if search.should_stop():
                return search, n
        return search, problem.size

    # The fastest configuration takes 575 s: nothing meets 60 s, and after the minimum number of
    # trials the model gives no untried configuration a 1% chance of it.
    hopeless, trials = search_until_stop(60.0)
    assert trials == 6 and hopeless.best() is None and hopeless.hopeless()
    # Only the fastest configuration meets 600 s: the search does not give up before finding it.
    narrow, _ = search_until_stop(600.0)
    best = narrow.best()
    assert best is not None and best.runtime_s == runtimes.min()
    assert not narrow.hopeless()


@pytest.mark.parametrize("name", ["random", "exhaustive", "cheapest", "gp-ei", "cherrypick"])
def test_every_strategy_tries_each_candidate_once(name: str) -> None:
    problem, runtimes = _cluster_problem()
    search = make_strategy(name, problem, seed=0)
    seen = []
    while not search.should_stop():
        batch = search.ask(4)
        seen += batch
        for i in batch:
            search.tell(Observation(i, float(runtimes[i])))
    assert sorted(seen) == list(range(problem.size))


def test_cheapest_first_goes_by_price() -> None:
    problem, _ = _cluster_problem()
    order = make_strategy("cheapest", problem).ask(5)
    assert list(problem.price_per_hour[order]) == sorted(problem.price_per_hour)[:5]


def test_bad_input_is_reported() -> None:
    problem, _ = _cluster_problem()
    with pytest.raises(UnknownNameError, match="known: cheapest, cherrypick"):
        make_strategy("nope", problem)
    with pytest.raises(InputError, match="objective"):
        Objective("speed")
    with pytest.raises(InputError, match="positive runtime"):
        Observation(0, -1.0)
    with pytest.raises(InputError, match="outside"):
        make_strategy("random", problem).tell(Observation(999, 1.0))
    with pytest.raises(InputError, match="matrix"):
        Problem(np.ones((3, 2)), np.ones(4))
    assert "cherrypick" in strategy_registry.names()


def test_deadline_acquisition_is_the_feasible_improvement() -> None:
    """Same observations, same models: the joint form values every candidate at least as much as
    EI x P[deadline met], and exactly as EI where any cheaper run would also be in time."""
    problem, runtimes = _cluster_problem()
    deadline = float(np.quantile(runtimes, 0.4))
    problem = Problem(problem.features, problem.price_per_hour, Objective(max_runtime_s=deadline))
    joint = BayesianStrategy(problem, seed=0)
    product = BayesianStrategy(problem, seed=0, config=BOConfig(feasible_improvement=False))
    free = BayesianStrategy(Problem(problem.features, problem.price_per_hour, Objective()), seed=0)
    for i in (18, 20, 23, 30, 35):  # all within the deadline: one incumbent for all three
        for s in (joint, product, free):
            s.tell(Observation(i, float(runtimes[i])))
    va, vb, vc = (
        dict(zip(s.indices.tolist(), s.values.tolist(), strict=True))
        for s in (joint.scores(), product.scores(), free.scores())
    )
    assert all(va[i] >= vb[i] - 1e-12 for i in va)
    assert sum(va[i] > 1.01 * vb[i] + 1e-9 for i in va) >= 5
    best = joint.best()
    assert best is not None and best.runtime_s <= deadline
    # Where the deadline's cost cap lies above the incumbent, the deadline takes nothing away.
    cap = deadline * problem.price_per_hour / 3600
    roomy = [i for i in va if cap[i] >= best.cost_usd]
    assert roomy and all(va[i] == pytest.approx(vc[i], rel=1e-9, abs=1e-15) for i in roomy)
    assert strategy_registry.create("gp-ei", problem).config.feasible_improvement is False  # type: ignore[attr-defined]


def test_kernels_report_what_scikit_learn_finds_by_introspection() -> None:
    from sklearn.gaussian_process.kernels import Kernel as Introspecting

    from cherrypick.optimizer import _model

    kernels = [
        _model.ConstantKernel(0.5, (0.1, 2.0)),
        _model.Matern(np.full(3, 0.5), (0.2, 1.0), nu=2.5),
        _model.DotProduct(1.0, "fixed"),
        _model.WhiteKernel(0.01, (1e-4, 0.1)),
    ]
    for kernel in kernels:
        assert repr(kernel.get_params()) == repr(Introspecting.get_params(kernel))
        assert repr(kernel.hyperparameters) == repr(Introspecting.hyperparameters.fget(kernel))
        assert kernel.hyperparameters  # each has at least one
    # What a fit changes goes through: a new theta is read back, in the same order.
    matern = kernels[1]
    matern.theta = np.log([0.3, 0.4, 0.9])
    assert np.allclose(matern.length_scale, [0.3, 0.4, 0.9])


def test_the_leave_one_out_density_is_that_of_refits_without_each_point() -> None:
    from scipy.stats import norm

    from cherrypick.optimizer._model import GaussianProcess

    rng = np.random.default_rng(3)
    x = rng.uniform(size=(9, 2))
    y = 0.3 * np.sin(3 * x[:, 0]) + 0.2 * x[:, 1] + 0.05 * rng.standard_normal(9)
    model = GaussianProcess(2, seed=0, linear=True, residual=True)  # no normalisation
    model.fit(x, y)
    brute = 0.0
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        again = GaussianProcess(2, seed=0, linear=True, residual=True)
        again._kernel = model._kernel  # the same hyperparameters, fitted without point i
        again.fit(x[rest], y[rest], optimise=False)
        mu, std = again.predict(x[i : i + 1])
        brute += float(norm.logpdf(y[i], mu[0], std[0]))
    got = model.loo_log_density()
    assert got is not None and got == pytest.approx(brute, rel=1e-6)
