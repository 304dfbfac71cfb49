"""P(within): the model's probability that its recommendation is truly within a share of the
best configuration, drawn jointly from its belief, and the stop rule on it."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.stats import norm
from test_prior import _costs, _problem

from cherrypick.optimizer import BayesianStrategy, Objective, Observation, StopRule
from cherrypick.optimizer._confidence import Belief, probability_within


def _belief(values: list[float], sigma: float, limited: list[float] | None = None) -> Belief:
    n = len(values)
    return Belief(
        np.array(values),
        np.array(limited if limited is not None else values),
        np.eye(n) * sigma**2,
        np.ones(n),
    )


def test_two_independent_beliefs_give_the_closed_form() -> None:
    # The rival is believed 5% dearer; both uncertain by 10% (log units), independently.
    belief = _belief([0.0, math.log(1.05)], 0.10)
    margin = math.log(1.10)
    exact = 1.0 - norm.cdf(-(math.log(1.05) + margin) / (0.10 * math.sqrt(2.0)))
    got = probability_within(belief, 0.10, None, np.random.default_rng(0), draws=40000)
    assert abs(got - exact) < 0.01, (got, exact)


def test_correlated_beliefs_are_surer_than_independent_ones() -> None:
    # The same marginals, but a model wrong about one is wrong about the other by as much.
    independent = _belief([0.0, math.log(1.02)], 0.2)
    correlated = Belief(
        independent.log_value,
        independent.log_limited,
        np.full((2, 2), 0.2**2) + np.eye(2) * 0.02**2,
        independent.p_complete,
    )
    rng = np.random.default_rng
    loose = probability_within(independent, 0.10, None, rng(1), draws=20000)
    tight = probability_within(correlated, 0.10, None, rng(1), draws=20000)
    assert tight > 0.99 > 0.9 > loose


def test_a_rival_that_misses_the_limit_or_does_not_complete_is_no_rival() -> None:
    cheap = [0.0, math.log(0.5)]  # the rival is believed half the price
    rng = np.random.default_rng
    assert probability_within(_belief(cheap, 0.05), 0.10, None, rng(0)) < 0.01
    late = _belief(cheap, 0.05, limited=[0.0, 2.0])
    assert probability_within(late, 0.10, 1.0, rng(0)) > 0.99
    failing = dataclasses.replace(_belief(cheap, 0.05), p_complete=np.array([1.0, 0.3]))
    assert abs(probability_within(failing, 0.10, None, rng(0), draws=20000) - 0.7) < 0.02


def test_a_recommendation_that_truly_misses_the_limit_is_not_within() -> None:
    belief = _belief([0.0, 1.0], 0.05, limited=[0.5, 0.0])  # it is past the limit 0.2
    assert probability_within(belief, 0.10, 0.2, np.random.default_rng(0)) < 0.01


def _told(indices: list[int]) -> tuple[BayesianStrategy, np.ndarray]:
    problem, runtimes = _problem(prior_error=0.0)
    search = BayesianStrategy(problem, seed=0)
    for i in indices:
        search.tell(Observation(i, float(runtimes[i]), True))
    return search, _costs(problem, runtimes)


def test_the_model_is_unsure_while_the_cheapest_is_untried_and_sure_once_it_is_tried() -> None:
    problem, runtimes = _problem(prior_error=0.0)
    costs = _costs(problem, runtimes)
    order = [int(i) for i in np.argsort(costs)]
    dear, _ = _told(order[-2:])
    unsure = dear.confidence(0.10)
    assert unsure is not None and unsure < 0.1
    found, _ = _told([*order[-2:], order[0]])
    sure = found.confidence(0.10)
    rec = found.recommend()
    assert rec is not None and rec.index == order[0]
    assert sure is not None and sure > 0.5 > unsure


def test_confidence_is_repeatable_and_grows_with_the_share() -> None:
    problem, runtimes = _problem(prior_error=0.3, seed=2)
    costs = _costs(problem, runtimes)
    tried = [int(i) for i in np.argsort(costs)[[0, 5, 12]]]
    search, _ = _told(tried)
    again, _ = _told(tried)
    chances = [search.confidence(w) for w in (0.02, 0.10, 0.50)]
    assert chances == [again.confidence(w) for w in (0.02, 0.10, 0.50)]
    assert chances[0] <= chances[1] <= chances[2]  # type: ignore[operator]


def test_no_feasible_trial_has_no_confidence() -> None:
    problem, runtimes = _problem(prior_error=0.0, objective=Objective(max_runtime_s=1.0))
    search = BayesianStrategy(problem, seed=0)
    search.tell(Observation(0, float(runtimes[0]), True))
    assert search.confidence() is None


def test_the_confidence_rule_stops_once_the_model_is_sure_enough() -> None:
    problem, runtimes = _problem(prior_error=0.0)
    costs = _costs(problem, runtimes)
    order = [int(i) for i in np.argsort(costs)]
    rule = StopRule(ei_fraction=0.0, min_trials=2, within=0.10, confidence=0.5)
    search = BayesianStrategy(problem, seed=0, stop_rule=rule)
    for i in order[-2:]:
        search.tell(Observation(i, float(runtimes[i]), True))
    assert not search.should_stop()  # EI below 0 of the best never stops it: only the rule
    search.tell(Observation(order[0], float(runtimes[order[0]]), True))
    assert search.should_stop()


def test_the_joint_latent_belief_matches_the_marginal_one() -> None:
    search, _ = _told([0, 9, 17, 30])
    search.scores()
    (model,) = search.models.values()
    x = search.x[:12]
    mu, std = model.predict(x)
    joint_mu, cov = model.joint_latent(x)
    np.testing.assert_allclose(joint_mu, mu)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), model.latent(std), rtol=1e-6, atol=1e-9)
    assert np.all(np.linalg.eigvalsh(cov) > -1e-9)


def test_with_every_candidate_tried_only_the_tried_ones_are_rivals() -> None:
    problem, runtimes = _problem(prior_error=0.0)
    search, costs = _told(list(range(problem.size)))
    assert len(search.untried()) == 0
    sure = search.confidence(0.10)
    rec = search.recommend()
    assert rec is not None and rec.index == int(np.argmin(costs))
    assert sure is not None and sure > 0.9
