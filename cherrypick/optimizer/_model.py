"""The surrogate: scikit-optimize's Gaussian process on scaled features.

Matern 5/2 with one length scale per feature, times a signal variance, plus a noise term; the
hyperparameters are fitted by maximum likelihood, warm-started from the previous fit so that a
search of 30 trials costs milliseconds per step.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import cho_solve
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
_MAX_SCALE = 10.0


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
        calibrate: bool = True,
    ) -> None:
        self._kernel = _kernel(dims, linear, ard)
        self._seed = seed
        self._restarts = restarts
        self._calibrate = calibrate
        self._gp: GaussianProcessRegressor | None = None
        self.std_scale = 1.0

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
            self.std_scale = _loo_scale(gp) if self._calibrate else 1.0
        self._gp = gp

    def log_evidence(self) -> float:
        """Log marginal likelihood of the data in its own units (undoing normalize_y)."""
        assert self._gp is not None, "fit() first"
        n = len(self._gp.y_train_)
        scale = float(np.log(np.atleast_1d(self._gp._y_train_std)[0]))
        return float(self._gp.log_marginal_likelihood_value_) - n * scale

    def predict(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        assert self._gp is not None, "fit() first"
        mu, std = self._gp.predict(x, return_std=True)
        return np.asarray(mu, dtype=np.float64), np.asarray(std * self.std_scale, dtype=np.float64)


def _loo_scale(gp: GaussianProcessRegressor) -> float:
    """How much wider the predictive spread must be to match the leave-one-out errors.

    Maximum-likelihood hyperparameters from a handful of points are overconfident. The GP's
    leave-one-out residuals have a closed form (Rasmussen & Williams, eq. 5.12): with K^-1 y = a,
    the standardised residual of point i is a_i / sqrt([K^-1]_ii). Their RMS is 1 for a calibrated
    model; when it is larger we widen every predictive standard deviation by it.
    """
    n = len(gp.alpha_)
    if n < 3:
        return 1.0
    k_inv = cho_solve((gp.L_, True), np.eye(n))
    z = np.ravel(gp.alpha_) / np.sqrt(np.maximum(np.diag(k_inv), 1e-12))
    return float(np.clip(np.sqrt(np.mean(z**2)), 1.0, _MAX_SCALE))
