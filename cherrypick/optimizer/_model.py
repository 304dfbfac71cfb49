"""The surrogate: scikit-optimize's Gaussian process on scaled features.

Matern 5/2 with one length scale per feature, times a signal variance, plus a noise term; the
hyperparameters are fitted by maximum likelihood, warm-started from the previous fit so that a
search of 30 trials costs milliseconds per step.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.kernels import (
    ConstantKernel,
    DotProduct,
    Kernel,
    Matern,
    WhiteKernel,
)

__all__ = ["GaussianProcess", "scale_features"]

FloatArray = NDArray[np.float64]


def scale_features(features: FloatArray) -> FloatArray:
    """Min-max scale each column to [0, 1]; drop columns that never change."""
    lo, hi = features.min(axis=0), features.max(axis=0)
    keep = hi > lo
    if not keep.any():
        return np.zeros((features.shape[0], 1))
    return np.asarray((features[:, keep] - lo[keep]) / (hi[keep] - lo[keep]), dtype=np.float64)


def _kernel(dims: int, linear: bool, ard: bool) -> Kernel:
    # Bounds, on features scaled to [0, 1]: a length scale under 0.3 lets the fit treat every
    # configuration as unrelated to the others (it then wins on likelihood with a handful of points
    # and predicts overconfidently); the amplitude floor keeps the spread of log cost realistic.
    matern = ConstantKernel(1.0, (0.3, 1e2)) * Matern(
        length_scale=np.full(dims, 0.5) if ard else 0.5, length_scale_bounds=(0.3, 3.0), nu=2.5
    )
    noise = WhiteKernel(1e-3, (1e-6, 0.1))
    if linear:
        trend = ConstantKernel(0.1, (1e-3, 1e2)) * DotProduct(1.0, (1e-2, 1e2))
        return matern + trend + noise
    return matern + noise


class GaussianProcess:
    """Fit on (X, y), predict mean and standard deviation; keeps its hyperparameters warm."""

    def __init__(
        self,
        dims: int,
        seed: int,
        linear: bool = False,
        ard: bool = True,
        restarts: int = 1,
    ) -> None:
        self._kernel = _kernel(dims, linear, ard)
        self._seed = seed
        self._restarts = restarts
        self._gp: GaussianProcessRegressor | None = None

    def fit(self, x: FloatArray, y: FloatArray, optimise: bool = True) -> None:
        gp = GaussianProcessRegressor(
            kernel=self._kernel,
            normalize_y=True,
            n_restarts_optimizer=self._restarts if optimise else 0,
            optimizer="fmin_l_bfgs_b" if optimise else None,
            random_state=self._seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(x, y)
        if optimise:
            self._kernel = clone(gp.kernel_)
            self._restarts = 0  # later fits start from this optimum
        self._gp = gp

    def predict(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        assert self._gp is not None, "fit() first"
        mu, std = self._gp.predict(x, return_std=True)
        return np.asarray(mu, dtype=np.float64), np.asarray(std, dtype=np.float64)
