"""Closed forms for the acquisition function on a log-normal belief.

The model predicts log(objective) ~ N(mu, sigma^2), so the objective itself is log-normal.
Expected improvement below the incumbent ``best`` is then, with z = (log best - mu) / sigma:

    EI = best * Phi(z) - exp(mu + sigma^2 / 2) * Phi(z - sigma)

and the probability that a log-normal quantity stays under a limit L is Phi((log L - mu) / sigma).

Under a deadline, cost = known price x runtime, so the cost and the runtime of one candidate are
one random quantity: the deadline is a cap on its cost (deadline x price per second). The
expected *feasible* improvement, E[(best - Y) 1{Y <= min(best, cap)}], is then the same closed
form with z = (log min(best, cap) - mu) / sigma. CherryPick multiplies EI by P[feasible] as if
the two were independent; they are not (a cheaper run is a shorter one), and the product
undervalues a candidate whose every improvement also meets the deadline (cap >= best): its
feasible improvement is its whole EI.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr, ndtr

__all__ = ["expected_improvement", "probability_below"]

FloatArray = NDArray[np.float64]
_TINY = 1e-12


def expected_improvement(
    mu: FloatArray, sigma: FloatArray, best: float, log_cap: FloatArray | None = None
) -> FloatArray:
    """E[max(best - Y, 0)] for log Y ~ N(mu, sigma^2), in the units of Y; with ``log_cap``,
    only improvements with Y <= exp(log_cap) count (the expected feasible improvement)."""
    sigma = np.maximum(sigma, _TINY)
    top = np.log(best) if log_cap is None else np.minimum(np.log(best), log_cap)
    z = (top - mu) / sigma
    # The second term in log space: exp(mu + sigma^2 / 2) alone overflows for wide beliefs.
    ei = best * ndtr(z) - np.exp(mu + 0.5 * sigma**2 + log_ndtr(z - sigma))
    return np.asarray(np.maximum(ei, 0.0), dtype=np.float64)


def probability_below(mu: FloatArray, sigma: FloatArray, limit: float) -> FloatArray:
    """P[Y <= limit] for log Y ~ N(mu, sigma^2)."""
    return np.asarray(ndtr((np.log(limit) - mu) / np.maximum(sigma, _TINY)), dtype=np.float64)
