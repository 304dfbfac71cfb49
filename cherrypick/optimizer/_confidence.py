"""How sure a model is of its recommendation: P(within), from joint posterior samples.

P(within w) is the probability, under the model's belief about every candidate's true value (the
function, not one run's noise), that the recommendation truly meets the objective's limit and no
candidate that would complete and meet it is truly more than w better: the recommendation's
value is at most (1 + w) times the true optimum's. Neighbouring candidates are correlated (a
model that is wrong about one GPU is wrong about its neighbours), so the candidates are drawn
jointly, not one by one: the probability of "none is better" is not a product of marginals.

Rows that cannot beat the recommendation by the margin in any plausible draw are left out before
drawing (at most ``_KEEP`` are kept, ranked by their own odds of beating it), so a catalog of a
thousand candidates costs a few hundred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

__all__ = ["Belief", "probability_within"]

FloatArray = NDArray[np.float64]

#: Candidates drawn jointly with the recommendation at most: those likeliest to beat it.
_KEEP = 400
#: A candidate whose marginal chance to beat the recommendation is below this is left out.
_NEGLIGIBLE = 1e-6


@dataclass(frozen=True)
class Belief:
    """One model's joint belief about candidates, row 0 the recommendation: the log of the
    objective's value and of the limited quantity (they differ by a known constant per row, so
    one draw moves both), their covariance, and each row's chance of completing at all."""

    log_value: FloatArray
    log_limited: FloatArray
    cov: FloatArray
    p_complete: FloatArray


def probability_within(
    belief: Belief,
    within: float,
    log_limit: float | None,
    rng: np.random.Generator,
    draws: int = 2000,
) -> float:
    """P(the recommendation is truly within ``within`` of the best candidate, and feasible)."""
    margin = float(np.log1p(within))
    rows = _contenders(belief, margin)
    value, limited = belief.log_value[rows], belief.log_limited[rows]
    factor = _factor(belief.cov[np.ix_(rows, rows)])
    shift = rng.standard_normal((draws, len(rows))) @ factor.T
    true_value, true_limited = value + shift, limited + shift
    meets = np.ones_like(true_value, dtype=bool)
    if log_limit is not None:
        meets = true_limited <= log_limit
    completes = rng.random(true_value.shape) < belief.p_complete[rows]
    rivals = meets[:, 1:] & completes[:, 1:]
    beaten = np.any(rivals & (true_value[:, 1:] < true_value[:, :1] - margin), axis=1)
    return float(np.mean(meets[:, 0] & completes[:, 0] & ~beaten))


def _contenders(belief: Belief, margin: float) -> NDArray[np.int64]:
    """Row 0 and the rows with a non-negligible marginal chance to beat it by ``margin``."""
    cov = belief.cov
    gap = belief.log_value[1:] - belief.log_value[0] + margin
    spread = np.sqrt(np.maximum(np.diag(cov)[1:] + cov[0, 0] - 2.0 * cov[1:, 0], 1e-18))
    odds = ndtr(-gap / spread) * belief.p_complete[1:]
    ranked = np.argsort(-odds)[:_KEEP]
    kept = ranked[odds[ranked] > _NEGLIGIBLE]
    return np.concatenate([[0], 1 + np.sort(kept)]).astype(np.int64)


def _factor(cov: FloatArray) -> FloatArray:
    """A matrix F with F F^T = cov (cov made positive semi-definite where rounding broke it)."""
    values, vectors = np.linalg.eigh((cov + cov.T) / 2.0)
    return np.asarray(vectors * np.sqrt(np.maximum(values, 0.0)), dtype=np.float64)
