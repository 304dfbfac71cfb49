"""The acquisition's closed forms against direct integration of the log-normal belief."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from cherrypick.optimizer._acquisition import expected_improvement, probability_below


def _ei_by_integration(mu: float, sigma: float, best: float) -> float:
    dist = stats.lognorm(s=sigma, scale=math.exp(mu))
    value, _ = integrate.quad(lambda y: (best - y) * dist.pdf(y), 0.0, best, limit=200)
    return float(value)


@pytest.mark.parametrize(
    ("mu", "sigma", "best"),
    [(0.0, 0.5, 1.0), (1.0, 0.2, 2.0), (-0.5, 1.0, 0.3), (2.0, 0.05, 7.5), (0.0, 2.0, 10.0)],
)
def test_expected_improvement_matches_integration(mu: float, sigma: float, best: float) -> None:
    closed = expected_improvement(np.array([mu]), np.array([sigma]), best)[0]
    assert closed == pytest.approx(_ei_by_integration(mu, sigma, best), rel=1e-6, abs=1e-12)


def test_expected_improvement_limits() -> None:
    # Certain and worse than the incumbent: nothing to gain; certain and better: the difference.
    ei = expected_improvement(np.log(np.array([3.0, 1.0])), np.array([0.0, 0.0]), 2.0)
    assert ei[0] == pytest.approx(0.0, abs=1e-9)
    assert ei[1] == pytest.approx(1.0, rel=1e-9)


def test_more_uncertainty_means_more_expected_improvement() -> None:
    sigmas = np.array([0.1, 0.3, 0.9])
    ei = expected_improvement(np.full(3, math.log(2.0)), sigmas, 2.0)
    assert np.all(np.diff(ei) > 0)


@pytest.mark.parametrize(
    ("mu", "sigma", "limit"), [(0.0, 0.5, 1.5), (3.0, 0.3, 10.0), (1.0, 2.0, 0.1)]
)
def test_probability_below_matches_lognormal_cdf(mu: float, sigma: float, limit: float) -> None:
    expected = stats.lognorm(s=sigma, scale=math.exp(mu)).cdf(limit)
    got = probability_below(np.array([mu]), np.array([sigma]), limit)[0]
    assert got == pytest.approx(expected, rel=1e-9)


def test_wide_beliefs_do_not_overflow() -> None:
    ei = expected_improvement(np.array([5.0, 400.0]), np.array([40.0, 30.0]), 2.0)
    assert np.all(np.isfinite(ei)) and np.all(ei >= 0) and np.all(ei <= 2.0)


def _efi_by_integration(mu: float, sigma: float, best: float, cap: float) -> float:
    dist = stats.lognorm(s=sigma, scale=math.exp(mu))
    top = min(best, cap)
    value, _ = integrate.quad(lambda y: (best - y) * dist.pdf(y), 0.0, top, limit=200)
    return float(value)


@pytest.mark.parametrize(
    ("mu", "sigma", "best", "cap"),
    [(0.0, 0.5, 1.0, 0.8), (1.0, 0.2, 2.0, 2.5), (-0.5, 1.0, 0.3, 0.1), (2.0, 0.3, 7.5, 7.0)],
)
def test_feasible_improvement_matches_integration(
    mu: float, sigma: float, best: float, cap: float
) -> None:
    closed = expected_improvement(np.array([mu]), np.array([sigma]), best, np.log([cap]))[0]
    assert closed == pytest.approx(_efi_by_integration(mu, sigma, best, cap), rel=1e-6, abs=1e-12)


def test_feasible_improvement_against_the_independent_product() -> None:
    # A cap at or above the incumbent removes nothing: every improvement is feasible.
    mu, sigma = np.log(np.array([1.0, 1.2, 0.8])), np.array([0.3, 0.5, 0.2])
    ei = expected_improvement(mu, sigma, 1.1)
    assert np.allclose(expected_improvement(mu, sigma, 1.1, np.log(np.full(3, 1.1))), ei)
    # Below it, a cheaper run is also a feasible one, so the two events go together: the
    # exact value is at least EI x P[feasible], which CherryPick's product would give.
    cap = np.log(np.full(3, 0.9))
    efi = expected_improvement(mu, sigma, 1.1, cap)
    product = ei * probability_below(mu, sigma, 0.9)
    assert np.all(efi <= ei) and np.all(efi > product)
