"""The surrogate: scikit-optimize's Gaussian process on scaled features.

Matern 5/2 with one length scale per feature, times a signal variance, plus a noise term; the
hyperparameters are fitted by maximum likelihood, warm-started from the previous fit so that a
search of 30 trials costs milliseconds per step.
"""

from __future__ import annotations

import warnings
from inspect import Parameter, signature
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process.kernels import Hyperparameter
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process import kernels
from skopt.learning.gaussian_process.kernels import Kernel

__all__ = ["Columns", "FailureModel", "GaussianProcess", "scale_features"]

FloatArray = NDArray[np.float64]
_GROUP_VAR = 0.1**2


def scale_features(features: FloatArray) -> FloatArray:
    """Min-max scale each column to [0, 1]; drop columns that never change."""
    lo, hi = features.min(axis=0), features.max(axis=0)
    keep = hi > lo
    if not keep.any():
        return np.zeros((features.shape[0], 1))
    return np.asarray((features[:, keep] - lo[keep]) / (hi[keep] - lo[keep]), dtype=np.float64)


class _Introspected:
    """scikit-learn finds a kernel's parameters and hyperparameters by introspection (its
    ``__init__`` signature, ``dir()``) on every access, and a hyperparameter fit reads them a few
    hundred times per trial: more than a third of a replay benchmark's time. The names depend on
    the class alone, so they are looked up once per class; the values are read as before."""

    _names: ClassVar[dict[type, tuple[list[str], list[str]]]] = {}

    @classmethod
    def _lookup(cls) -> tuple[list[str], list[str]]:
        names = _Introspected._names.get(cls)
        if names is None:
            params = [
                p.name
                for p in signature(cls.__init__).parameters.values()
                if p.name != "self" and p.kind != Parameter.VAR_KEYWORD
            ]
            hyper = [a for a in dir(cls) if a.startswith("hyperparameter_")]
            names = _Introspected._names[cls] = (params, hyper)
        return names

    def get_params(self, deep: bool = True) -> dict[str, object]:
        return {name: getattr(self, name) for name in self._lookup()[0]}

    @property
    def hyperparameters(self) -> list[Hyperparameter]:
        return [getattr(self, name) for name in self._lookup()[1]]


# The kernels of scikit-optimize, with the lookup above.
class ConstantKernel(_Introspected, kernels.ConstantKernel):  # type: ignore[misc]
    pass


class DotProduct(_Introspected, kernels.DotProduct):  # type: ignore[misc]
    pass


class Matern(_Introspected, kernels.Matern):  # type: ignore[misc]
    pass


class WhiteKernel(_Introspected, kernels.WhiteKernel):  # type: ignore[misc]
    pass


class Columns(Kernel):  # type: ignore[misc]
    """``kernel`` applied to the columns ``start:stop`` of the inputs only."""

    def __init__(self, kernel: Kernel, start: int, stop: int) -> None:
        self.kernel = kernel
        self.start = start
        self.stop = stop

    def get_params(self, deep: bool = True) -> dict[str, object]:
        params: dict[str, object] = {"kernel": self.kernel, "start": self.start, "stop": self.stop}
        if deep:
            params.update(("kernel__" + k, v) for k, v in self.kernel.get_params().items())
        return params

    @property
    def hyperparameters(self) -> list[Hyperparameter]:
        return [
            Hyperparameter("kernel__" + h.name, h.value_type, h.bounds, h.n_elements)
            for h in self.kernel.hyperparameters
        ]

    @property
    def theta(self) -> FloatArray:
        return np.asarray(self.kernel.theta)

    @theta.setter
    def theta(self, theta: FloatArray) -> None:
        self.kernel.theta = theta

    @property
    def bounds(self) -> FloatArray:
        return np.asarray(self.kernel.bounds)

    def _cut(self, x: FloatArray | None) -> FloatArray | None:
        return None if x is None else np.asarray(x)[:, self.start : self.stop]

    def __call__(
        self, x: FloatArray, y: FloatArray | None = None, eval_gradient: bool = False
    ) -> FloatArray | tuple[FloatArray, FloatArray]:
        result: FloatArray | tuple[FloatArray, FloatArray]
        result = self.kernel(self._cut(x), self._cut(y), eval_gradient=eval_gradient)
        return result

    def diag(self, x: FloatArray) -> FloatArray:
        return np.asarray(self.kernel.diag(self._cut(x)))

    def is_stationary(self) -> bool:
        return bool(self.kernel.is_stationary())

    @property
    def requires_vector_input(self) -> bool:
        return True


def _residual_kernel(dims: int, linear: bool, ard: bool, groups: int = 0) -> Kernel:
    # Departures (log units) from a prior prediction: a common offset, a smooth part with an
    # amplitude between 0.15 and 1, and noise between 5% and 10%. Published performance models are
    # off by ~12% on average (Habitat, USENIX ATC'21), and on some GPU by much more: with a floor
    # of 0.1 the fit to a few small departures left every untried GPU too sure to be worth a trial
    # and missed the one the model misjudged most (dry-run benchmark, README); one off by more than
    # e-fold is no prior. The noise term is what no feature explains (run-to-run variation, one
    # machine type against its twin), which a fit to a handful of points would otherwise explain
    # away and then trust too much. A model's errors are local (one GPU's achievable fraction of
    # peak says little of another's): length scales at most 1, so a few trials on one kind of
    # machine do not vouch for every other.
    # With ``groups`` (one-hot labels after the ``dims`` features, e.g. the GPU model), a term
    # shared by every candidate with the same label: a performance model misjudges a GPU by a
    # factor that holds on every machine that carries it (its achievable fraction of peak), so
    # one trial on an H100 moves every H100 candidate and none other, and a GPU not yet tried
    # keeps that term's spread. Its amplitude is at least 10%, the size of such errors.
    matern = ConstantKernel(0.04, (0.15**2, 1.0)) * Matern(
        length_scale=np.full(dims, 0.5) if ard else 0.5, length_scale_bounds=(0.2, 1.0), nu=2.5
    )
    noise = WhiteKernel(0.05**2, (0.05**2, 0.1**2))
    offset = ConstantKernel(0.01, (1e-4, 1.0))
    trend = offset * DotProduct(1.0, (1e-2, 1e2)) if linear else offset
    if not groups:
        return matern + trend + noise
    shared = ConstantKernel(_GROUP_VAR, (_GROUP_VAR, 1.0)) * Columns(
        DotProduct(0.0, "fixed"), dims, dims + groups
    )
    return Columns(matern, 0, dims) + Columns(trend, 0, dims) + shared + noise


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
        residual: bool = False,
        groups: int = 0,
    ) -> None:
        """``residual``: model departures from a prior prediction, in log units, around zero
        (no normalisation, so a handful of similar departures does not shrink the spread).
        ``groups`` (residual models only): the number of one-hot label columns that follow the
        ``dims`` feature columns of every input, for the term their candidates share."""
        self._residual = residual
        self._kernel = (
            _residual_kernel(dims, linear, ard, groups) if residual else _kernel(dims, linear, ard)
        )
        self._seed = seed
        self._restarts = restarts
        self._gp: GaussianProcessRegressor | None = None

    def fit(self, x: FloatArray, y: FloatArray, optimise: bool = True) -> None:
        gp = GaussianProcessRegressor(
            kernel=self._kernel,
            normalize_y=not self._residual,
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
        """Mean and standard deviation of a new measurement at ``x`` (noise included)."""
        if self._gp is None:  # no data yet: the prior (a residual model's zero departure)
            assert self._residual, "fit() first"
            return np.zeros(len(x)), np.sqrt(self._kernel.diag(x))
        if not len(x):  # every candidate tried: nothing to predict
            return np.zeros(0), np.zeros(0)
        mu, std = self._gp.predict(x, return_std=True)
        return np.asarray(mu, dtype=np.float64), np.asarray(std, dtype=np.float64)

    def loo_log_density(self) -> float | None:
        """How well the fit predicts each of its own points from the others: the sum of the
        leave-one-out log densities (closed form, Rasmussen & Williams eq. 5.12), in the units
        of the targets; None before a fit."""
        if self._gp is None:
            return None
        k_inv = np.asarray(self._gp.K_inv_, dtype=np.float64)
        d = np.maximum(np.diag(k_inv), 1e-12)
        scale = float(np.squeeze(self._gp._y_train_std)) if not self._residual else 1.0
        residual = np.ravel(self._gp.alpha_) / d * scale
        variance = scale**2 / d
        return float(np.sum(-0.5 * (np.log(2 * np.pi * variance) + residual**2 / variance)))

    def joint_latent(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Mean and covariance of the function itself at the rows of ``x``, jointly (the
        fitted noise term left out, as in :meth:`latent`)."""
        if self._gp is None:  # no data yet: the prior, around zero
            assert self._residual, "fit() first"
            mu, cov = np.zeros(len(x)), np.asarray(self._kernel(x), dtype=np.float64)
        else:
            raw_mu, raw_cov = self._gp.predict(x, return_cov=True)
            mu, cov = np.asarray(raw_mu, dtype=np.float64), np.asarray(raw_cov, dtype=np.float64)
        diagonal = np.diag_indices_from(cov)
        cov[diagonal] = np.maximum(cov[diagonal] - self._noise_variance(), 0.0)
        return mu, cov

    def latent(self, std: FloatArray) -> FloatArray:
        """The spread of the function itself, from ``predict()``'s: the fitted noise term left
        out, so what another run of a configuration would average to, not one run's luck."""
        return np.sqrt(np.maximum(np.square(std) - self._noise_variance(), 0.0))

    def _noise_variance(self) -> float:
        """The fitted noise term's variance, in the units of the targets."""
        kernel = self._kernel if self._gp is None else self._gp.kernel_
        noise = getattr(kernel, "k2", None)  # every kernel here is (...) + WhiteKernel
        variance = float(noise.noise_level) if isinstance(noise, WhiteKernel) else 0.0
        if self._gp is not None and not self._residual:  # fitted on normalised targets
            variance *= float(np.squeeze(self._gp._y_train_std)) ** 2
        return variance


class FailureModel:
    """The probability that a candidate's run completes, learnt from the runs that did not.

    Label regression in place of a GP classifier: completed runs are 0, failed ones -2, around a
    prior mean of +1 (runs are expected to complete); the probability is the normal CDF of the
    latent mean over its spread. Far from any failure it stays high; next to one it drops.
    """

    def __init__(self, seed: int) -> None:
        self._kernel = ConstantKernel(1.0, "fixed") * Matern(
            length_scale=0.5, length_scale_bounds=(0.2, 1.0), nu=2.5
        ) + WhiteKernel(0.1, "fixed")
        self._seed = seed

    def probability(self, x: FloatArray, ok: NDArray[np.bool_], at: FloatArray) -> FloatArray:
        from scipy.stats import norm

        gp = GaussianProcessRegressor(kernel=self._kernel, random_state=self._seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(x, np.where(ok, 0.0, -2.0))
        mu, std = gp.predict(at, return_std=True)
        return np.asarray(norm.cdf((1.0 + mu) / np.maximum(std, 1e-9)), dtype=np.float64)
