"""Constrained Bayesian optimisation over a finite candidate set (CherryPick, NSDI'17, and ours).

The model: Gaussian processes (``_model``) on the log of what a trial measures, one per target.
``"cost"`` is CherryPick's choice: log(job cost). ``"runtime"`` models log(runtime) and multiplies
by the price, which is known before any trial (cost = price per hour x runtime), so the model does
not have to learn the price structure from a handful of points. By default both are kept and their
beliefs mixed with equal weights: which one predicts better differs from job to job, and the
mixture was at least as good as the better of the two on every benchmark we ran (README).

Predictions are widened by ``spread()``: how far the model's own forecasts for the trials it chose
were off, so that an overconfident fit neither stops the search nor stops exploring.

The acquisition scores every untried candidate exactly, in closed form for the log-normal
prediction (``_acquisition``). Under a constraint it is the expected feasible improvement:
the objective and the constrained quantity differ by the known price, so the constraint caps the
objective and only improvements under the cap count (``feasible_improvement``; CherryPick's
``EI x P[constraint holds]``, which treats them as independent, with it off, as ``gp-ei`` does).
Until a feasible trial exists, it is ``P[constraint holds]``. With a prior, EI uses the model's
spread without its fitted noise term (``GaussianProcess.latent``): improvement is sought in a
machine's true cost, not in one run's luck, while the deadline is met or missed by one run, so
there the product stays (the exact form for that pair changed nothing on the dry-run benchmark).

Failed trials (crash, out of memory, timeout) are never proposed again and enter the models as a
run that did not finish in time: ``failure_penalty`` (log 2 by default) slower than the slowest
completed run and, under a deadline, than the deadline. Their neighbours look slower and the
probability of meeting the deadline near them drops; their cost follows from their own price.
A prior's chance that a run completes (``Problem.prior_fit``: near a GPU's memory limit, the odds
that the job fits) weighs the acquisition like the failures' own, so a candidate near the line is
tried when what it may save outweighs the risk; a completed run of its group settles it, and a
failed one makes the group unlikely to fit, as far as the prior doubted it (``_prior_fit``).

With ``StopRule.cost_aware`` and a problem that knows what each trial will cost
(``Problem.trial_cost_usd``: boot, set-up and the short run at the candidate's price), a trial is
chosen for what it may save on the job less what it costs (until a trial has met the limit, for
the saving per trial dollar: a feasible run found cheaply comes first), and the search stops,
whatever ``min_trials`` says, once no trial is expected to save more than it costs
(``no_trial_pays``).

``ask(n)`` with n > 1 uses the kriging believer (a constant liar at the predicted mean): each pick
is added to the data at its predicted value before the next one is scored, with the
hyperparameters held fixed, so a batch spreads out instead of repeating one region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import qmc

from cherrypick.errors import InputError
from cherrypick.optimizer._acquisition import expected_improvement, probability_below
from cherrypick.optimizer._confidence import Belief, probability_within
from cherrypick.optimizer._model import FailureModel, GaussianProcess, scale_features
from cherrypick.optimizer.base import Observation, Problem, Recommendation, StopRule, Strategy

__all__ = ["BOConfig", "BayesianStrategy"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_NOISE_FLOOR = 0.05  # log units: about the run-to-run noise of cloud runtimes
#: How likely a run of a candidate that fits (``Problem.prior_fit``) fails all the same (a crash,
#: a timeout): our assumption. A failure where the prior was sure of the fit (0.98) then leaves
#: its group at 0.83; one where it gave even odds, at 0.09: most likely it did not fit.
_OTHER_FAILURE = 0.1


@dataclass(frozen=True)
class BOConfig:
    """How the Bayesian strategy models and chooses. ``weighting``: the models' (``targets``)
    weights in the mixture, ``equal`` or ``loo`` (by how well each predicts the measured runs
    from the others, never below ``min_weight``). ``cost_weight``: with the stop rule's
    ``cost_aware``, a trial is chosen for what it may save on the job less this many times its
    cost (1: the job runs once); docs/benchmarks.md has what each measured."""

    targets: tuple[str, ...] = ("runtime", "cost")
    linear_trend: bool = True
    ard: bool = True
    initial: str = "sobol"
    n_initial: int = 3
    failure_penalty: float = math.log(2.0)
    feasible_improvement: bool = True
    weighting: str = "equal"
    min_weight: float = 0.0
    cost_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.targets or not set(self.targets) <= {"runtime", "cost"}:
            raise InputError(f"BO targets must be 'runtime' and/or 'cost', not {self.targets}")
        if self.initial not in ("sobol", "random"):
            raise InputError(f"initial design must be 'sobol' or 'random', not '{self.initial}'")
        if self.weighting not in ("equal", "loo"):
            raise InputError(f"model weighting must be 'equal' or 'loo', not '{self.weighting}'")
        if self.cost_weight < 0:
            raise InputError(f"cost_weight must be >= 0, got {self.cost_weight}")
        if not 0 <= self.min_weight <= 0.5:
            raise InputError(f"min_weight must be in [0, 0.5], got {self.min_weight}")
        if self.n_initial < 1:
            raise InputError(f"n_initial must be >= 1, got {self.n_initial}")


@dataclass(frozen=True)
class Scores:
    """Acquisition values of the untried candidates, best first, with the models' (averaged)
    predicted log cost and its standard deviation before calibration; while a constraint is set
    and no trial has met it, ``chance``: the probability that each one's run would."""

    indices: IntArray
    values: FloatArray
    log_cost: FloatArray
    sigma: FloatArray
    saving: FloatArray
    chance: FloatArray | None = None
    trial_cost: FloatArray | None = None

    def forecast(self, index: int) -> tuple[float, float] | None:
        where = np.flatnonzero(self.indices == index)
        return (
            None
            if len(where) == 0
            else (float(self.log_cost[where[0]]), float(self.sigma[where[0]]))
        )


def _log_prior(prior_runtime_s: FloatArray | None, penalty: float) -> FloatArray | None:
    """The prior's log runtime; a predicted failure is a run that does not finish in time, as a
    failed trial is (``failure_penalty`` slower than the slowest predicted run)."""
    if prior_runtime_s is None or not np.any(np.isfinite(prior_runtime_s)):
        return None
    log_prior = np.log(prior_runtime_s)
    known = np.isfinite(log_prior)
    return np.where(known, log_prior, log_prior[known].max() + penalty)


def _p_ok(
    log_limited: FloatArray, limit: float | None, sigma: FloatArray, p_complete: FloatArray | float
) -> FloatArray:
    """The probability that a run completes and meets the limit."""
    meets = np.ones_like(sigma) if limit is None else probability_below(log_limited, sigma, limit)
    return np.asarray(p_complete * meets, dtype=np.float64)


class BayesianStrategy(Strategy):
    name = "cherrypick"

    def __init__(
        self,
        problem: Problem,
        seed: int = 0,
        stop_rule: StopRule | None = None,
        config: BOConfig | None = None,
    ) -> None:
        super().__init__(problem, seed, stop_rule)
        self.config = cfg = config or BOConfig()
        self.log_rate = np.log(problem.price_per_hour / 3600.0)
        self.x = scale_features(problem.features)
        self.prior = _log_prior(problem.prior_runtime_s, cfg.failure_penalty)
        targets = cfg.targets
        if self.prior is not None:
            # Both targets become the same departure from the prior: one model, and the prior
            # (scaled) is a feature too, so the model can learn that it is off by a factor.
            targets = ("runtime",)
            self.x = np.hstack([self.x, scale_features(self.prior[:, None])])
        dims = self.x.shape[1]
        residual = self.prior is not None
        groups = 0
        if residual and problem.groups is not None:
            # Candidates with one label (the caller's: a GPU model) share a departure from the
            # prior: one-hot columns after the features, which the smooth part of the GP ignores.
            onehot = (problem.groups[:, None] == np.unique(problem.groups)[None, :]).astype(float)
            groups = onehot.shape[1]
            self.x = np.hstack([self.x, onehot])
        self.models = {
            t: GaussianProcess(
                dims, seed, linear=cfg.linear_trend, ard=cfg.ard, residual=residual, groups=groups
            )
            for t in targets
        }
        known = problem.trial_cost_usd is not None and problem.objective.kind == "cost"
        aware = stop_rule is not None and stop_rule.cost_aware
        self.trial_cost = problem.trial_cost_usd if aware and known else None
        self._failures = FailureModel(seed)
        # With a prior the acquisition picks from the first trial: no space-filling design.
        self._design = [] if residual else self._initial_design(seed)
        self._cache: tuple[tuple[int, int, int], Scores] | None = None
        self._forecasts: dict[int, tuple[float, float]] = {}
        self._errors: list[float] = []

    def _initial_design(self, seed: int) -> list[int]:
        k = min(self.config.n_initial, self.problem.size)
        if self.config.initial == "random":
            return [int(i) for i in self.rng.choice(self.problem.size, size=k, replace=False)]
        # Sobol points keep their balance only in powers of two: draw 2^m, use the first k.
        m = max(0, math.ceil(math.log2(k)))
        points = qmc.Sobol(self.x.shape[1], scramble=True, seed=seed).random_base2(m)[:k]
        chosen: list[int] = []
        for p in points:
            dist = np.linalg.norm(self.x - p, axis=1)
            dist[chosen] = np.inf
            chosen.append(int(np.argmin(dist)))
        return chosen

    def _propose(self, n: int) -> list[int]:
        untried = set(self.untried().tolist())
        chosen = [i for i in self._design if i in untried][:n]
        if len(chosen) == n or (self.prior is None and not self._has_completed()):
            return chosen + self._random_fill(n - len(chosen), chosen)
        fantasies: dict[int, float] = {}
        while len(chosen) < n:
            scores = self.scores(fantasies)
            pick = int(scores.indices[0])
            chosen.append(pick)
            fantasies[pick] = float(scores.log_cost[0])
            self._forecasts[pick] = (float(scores.log_cost[0]), float(scores.sigma[0]))
        return chosen

    def tell(self, observation: Observation) -> None:
        forecast = self._forecast(observation)
        super().tell(observation)
        if forecast is not None and observation.cost_usd:
            mu, sigma = forecast
            # Errors within measurement noise say nothing about the model's confidence.
            self._errors.append((math.log(observation.cost_usd) - mu) / max(sigma, _NOISE_FLOOR))

    def _forecast(self, observation: Observation) -> tuple[float, float] | None:
        """What the model predicted for a model-chosen trial before it ran. A search resumed by
        replaying tell() alone recomputes it from the same earlier observations."""
        i = observation.index
        if (
            not observation.ok
            or i in self._design
            or (self.prior is None and not self._has_completed())
        ):
            return None
        if i in self._forecasts:
            return self._forecasts.pop(i)
        return self.scores().forecast(i)

    def spread(self) -> float:
        """How much wider than the models' own the predictive spread must be.

        Maximum-likelihood fits on a handful of points are overconfident, and most so on the
        candidates the acquisition picks. Each model-chosen trial is a forecast we can check: the
        root mean square of its standardised errors (with one prior error of 1) widens every
        prediction, never narrows it. A model that keeps being surprised keeps exploring instead of
        stopping, and one that predicts well is left as it is.
        """
        return max(
            1.0, math.sqrt((1.0 + sum(z * z for z in self._errors)) / (1 + len(self._errors)))
        )

    def _random_fill(self, k: int, taken: list[int]) -> list[int]:
        pool = np.setdiff1d(self.untried(), taken)
        return [int(i) for i in self.rng.choice(pool, size=min(k, len(pool)), replace=False)]

    def _has_completed(self) -> bool:
        return any(o.ok for o in self.observations.values())

    def _training_data(self, fantasies: dict[int, float]) -> tuple[IntArray, FloatArray]:
        """Indices and their log cost: measured, failed (imputed as slow) and fantasised."""
        ok = [o for o in self.observations.values() if o.ok]
        idx = [o.index for o in ok]
        log_cost = [math.log(o.cost_usd or 0.0) for o in ok]  # tell() sets it when ok
        runtime = np.array(log_cost) - self.log_rate[idx]
        failed = [o.index for o in self.observations.values() if not o.ok]
        # A failed run did not finish in time: slower than the slowest completed run and, under a
        # deadline, past it. Its cost follows from its own price, so a failure does not make its
        # neighbours look dear, only slow and unlikely to meet the deadline.
        if len(runtime):
            slow = float(runtime.max())
        else:  # only with a prior can a model be fitted before any run completes
            assert self.prior is not None
            slow = float(self.prior.max())
        if self.problem.objective.max_runtime_s is not None:
            slow = max(slow, math.log(self.problem.objective.max_runtime_s))
        slow += self.config.failure_penalty
        imputed = [slow + float(self.log_rate[i]) for i in failed]
        idx += failed + list(fantasies)
        log_cost += imputed + list(fantasies.values())
        return np.asarray(idx, dtype=np.int64), np.asarray(log_cost, dtype=np.float64)

    def scores(self, fantasies: dict[int, float] | None = None) -> Scores:
        """Fit the models to what is known and score every untried candidate."""
        fantasies = fantasies or {}
        version = (len(self.observations), len(self.pending), len(self.excluded))
        if not fantasies and self._cache is not None and self._cache[0] == version:
            return self._cache[1]
        idx, log_cost = self._training_data(fantasies)
        cand = np.setdiff1d(self.untried(), list(fantasies))
        values, means, sigmas, chances = [], [], [], []
        spread = self.spread()
        p_complete = self._p_complete(cand)
        seeking = self.problem.objective.limit is not None and self.best() is None
        trial_cost = None if self.trial_cost is None else self.trial_cost[cand]
        for target, model in self.models.items():
            if len(idx):
                model.fit(self.x[idx], log_cost - self._offset(target, idx), optimise=not fantasies)
            mu, sigma = model.predict(self.x[cand])
            mu_cost = mu + self._offset(target, cand)
            runtime = mu_cost - self.log_rate[cand]
            # With a prior, improvement is sought in the machine's true cost, not in one run's
            # noise (the residual model's noise term is at least 5% by construction).
            latent = model.latent(sigma) if self.prior is not None else sigma
            values.append(
                self._acquisition(mu_cost, runtime, sigma * spread, p_complete, latent * spread)
            )
            if seeking:
                _, log_limited, limit = self._split(mu_cost, runtime)
                chances.append(_p_ok(log_limited, limit, sigma * spread, p_complete))
            means.append(mu_cost)
            sigmas.append(sigma)
        # A mixture of the models' beliefs: EI and the feasibility probability are
        # expectations over the belief, so the mixture's acquisition is the mean of theirs.
        w = self._weights()
        mean = np.average(means, axis=0, weights=w)
        sigma_mix = np.sqrt(
            np.maximum(
                np.average(np.square(sigmas) + np.square(means), axis=0, weights=w) - mean**2,
                0.0,
            )
        )
        saving = np.average(values, axis=0, weights=w)
        value = self._net(saving, trial_cost, found=self.best() is not None)
        tie_break = mean if self.problem.objective.kind == "cost" else mean - self.log_rate[cand]
        order = np.lexsort((tie_break, -value))
        chance = np.average(chances, axis=0, weights=w)[order] if seeking else None
        cost = None if trial_cost is None else trial_cost[order]
        scores = Scores(
            cand[order], value[order], mean[order], sigma_mix[order], saving[order], chance, cost
        )
        if not fantasies:
            self._cache = (version, scores)
        return scores

    def _weights(self) -> FloatArray:
        """Each model's weight in the mixture: equal, or by how well each predicted the
        measured runs from the others (leave-one-out), floored at ``min_weight``."""
        n = len(self.models)
        if n == 1 or self.config.weighting == "equal":
            return np.full(n, 1.0 / n)
        loo = [m.loo_log_density() for m in self.models.values()]
        if any(v is None for v in loo):
            return np.full(n, 1.0 / n)
        score = np.array(loo, dtype=np.float64)
        w = np.exp(score - score.max())
        w /= w.sum()
        w = np.maximum(w, self.config.min_weight)
        return np.asarray(w / w.sum(), dtype=np.float64)

    def _p_complete(self, cand: IntArray) -> FloatArray | float:
        """The chance that a candidate's run completes: the prior's (``prior_fit``) times, with
        a prior runtime, what the failed runs teach.

        The prior already predicts some failures (out of memory), and the odds of those it is
        unsure of; a failure it did not predict (a crash, an undersized machine it misjudged) is
        imputed as a slow run like any failure, but a slow run is not enough to steer away when
        the prior says its neighbours are cheap.
        """
        fit = self._prior_fit(cand)
        done = list(self.observations.values())
        if self.prior is None or all(o.ok for o in done):
            return fit
        idx = np.array([o.index for o in done], dtype=np.int64)
        ok = np.array([o.ok for o in done], dtype=bool)
        return fit * self._failures.probability(self.x[idx], ok, self.x[cand])

    def _prior_fit(self, cand: IntArray) -> FloatArray | float:
        """``Problem.prior_fit`` of the candidates, given their group's runs (which share it): 1
        once one completed; after k failures, by Bayes' rule, fit q^k / (fit q^k + 1 - fit),
        each failure being one for another reason with probability q (``_OTHER_FAILURE``)."""
        fit, groups = self.problem.prior_fit, self.problem.groups
        if fit is None:
            return 1.0
        if groups is None:
            return fit[cand]
        done = self.observations.values()
        completed = [groups[o.index] for o in done if o.ok]
        failed = np.array([groups[o.index] for o in done if not o.ok], dtype=np.int64)
        likelihood = _OTHER_FAILURE ** np.sum(groups[cand][:, None] == failed[None, :], axis=1)
        updated = fit[cand] * likelihood / (fit[cand] * likelihood + 1.0 - fit[cand])
        return np.where(np.isin(groups[cand], completed), 1.0, updated)

    def _offset(self, target: str, idx: IntArray) -> FloatArray | float:
        """What a model's target leaves out of log cost: the known log price (runtime model) and
        the prior's log runtime (both models, when there is a prior)."""
        offset: FloatArray | float = self.log_rate[idx] if target == "runtime" else 0.0
        return offset if self.prior is None else offset + self.prior[idx]

    def _acquisition(
        self,
        log_cost: FloatArray,
        log_runtime: FloatArray,
        sigma: FloatArray,
        p_complete: FloatArray | float = 1.0,
        sigma_ei: FloatArray | None = None,
    ) -> FloatArray:
        """The expected improvement (feasible, or times the chance of meeting the limit); until
        a trial or the prior says what is feasible, the chance of meeting the limit alone."""
        objective = self.problem.objective
        log_value, log_limited, limit = self._split(log_cost, log_runtime)
        best = self.best()
        incumbent = None if best is None else objective.value(best.runtime_s, best.cost_usd)
        if (
            incumbent is not None
            and limit is not None
            and self.prior is None
            and self.config.feasible_improvement
        ):
            # One quantity: the runtime is the cost over the known price, so the limit caps the
            # value and the expected feasible improvement is exact (``_acquisition``).
            log_cap = math.log(limit) + (log_value - log_limited)
            return expected_improvement(log_value, sigma, incumbent, log_cap) * p_complete
        p_ok = _p_ok(log_limited, limit, sigma, p_complete)
        if incumbent is None:
            if self.prior is None or not np.any(p_ok >= 0.5):
                return p_ok
            # Nothing feasible measured yet, but the prior says what is likely feasible: improve
            # on (half again) the best of that, rather than chase the surest and dearest machine.
            incumbent = 1.5 * float(np.exp(log_value[p_ok >= 0.5].min()))
        ei_sigma = sigma if sigma_ei is None else sigma_ei
        return expected_improvement(log_value, ei_sigma, incumbent) * p_ok

    def _net(self, saving: FloatArray, trial_cost: FloatArray | None, found: bool) -> FloatArray:
        """What a trial may save on the job less what it costs (``cost_weight`` times); until a
        trial meets the limit, there is nothing to recommend yet: the saving per trial dollar,
        so that the first feasible run is found cheaply."""
        if trial_cost is None:
            return saving
        if not found:
            return np.asarray(saving / np.maximum(trial_cost, 1e-9), dtype=np.float64)
        return np.asarray(saving - self.config.cost_weight * trial_cost, dtype=np.float64)

    def _split(
        self, log_cost: FloatArray, log_runtime: FloatArray
    ) -> tuple[FloatArray, FloatArray, float | None]:
        """The log of the objective, the log of what is constrained, and the limit (if any)."""
        objective = self.problem.objective
        if objective.kind == "cost":
            return log_cost, log_runtime, objective.limit
        return log_runtime, log_cost, objective.limit

    def recommend(self) -> Recommendation | None:
        """With a prior, the feasible trial the model believes best, not the luckiest run.

        One run of each configuration is a noisy measurement (the model's noise term says how
        noisy); the model's mean at a tried configuration weighs its run against the prior and
        its neighbours' runs. Without a prior, the best measured trial.
        """
        believed = self.believed()
        if not believed:
            return self.best()
        feasible = {rec.index: rec for rec in self.feasible()}
        return feasible[min(believed, key=believed.__getitem__)]

    def believed(self) -> dict[int, float]:
        """With a prior and two feasible trials or more, what the model believes each feasible
        trial's configuration truly scores (the objective's value: dollars or seconds), by
        candidate index; otherwise nothing (the measurements decide)."""
        feasible = self.feasible()
        if self.prior is None or len(feasible) < 2:
            return {}
        self.scores()  # fits the model to every observation
        idx = np.array([rec.index for rec in feasible], dtype=np.int64)
        (target, model), *_ = self.models.items()
        mu, _ = model.predict(self.x[idx])
        log_cost = mu + self._offset(target, idx)
        cost_kind = self.problem.objective.kind == "cost"
        log_value = log_cost if cost_kind else log_cost - self.log_rate[idx]
        return {int(i): float(np.exp(v)) for i, v in zip(idx, log_value, strict=True)}

    def confidence(
        self, within: float = 0.10, draws: int = 2000, index: int | None = None
    ) -> float | None:
        """P(within): the model's probability that the recommendation (or the untried candidate
        ``index``) truly meets the limit and is truly within ``within`` of the best candidate
        (``_confidence``); None before a feasible trial. Drawn from its own seeded generator:
        the same trials, the same answer."""
        rec = self.recommend()
        if index is not None:
            pick = index
        elif rec is not None:
            pick = rec.index
        else:
            return None
        self.scores()  # fits the models to every observation
        feasible = [r.index for r in self.feasible() if r.index != pick]
        untried = np.setdiff1d(self.untried(), [pick])
        rows = np.concatenate([[pick], feasible, untried]).astype(np.int64)
        first = np.ones(1) if index is None else np.ravel(self._p_complete(np.array([pick])))
        p_complete = np.concatenate(
            [
                np.broadcast_to(first, (1,)),
                np.ones(len(feasible)),
                np.broadcast_to(self._p_complete(untried), untried.shape),
            ]
        )
        limit = self.problem.objective.limit
        log_limit = None if limit is None else math.log(limit)
        rng = np.random.default_rng([self.seed, len(self.observations)])
        chances = []
        for target, model in self.models.items():
            mu, cov = model.joint_latent(self.x[rows])
            log_cost = mu + self._offset(target, rows)
            log_value, log_limited, _ = self._split(log_cost, log_cost - self.log_rate[rows])
            belief = Belief(log_value, log_limited, cov * self.spread() ** 2, p_complete)
            chances.append(probability_within(belief, within, log_limit, rng, draws))
        return float(np.average(chances, weights=self._weights()))

    def should_stop(self) -> bool:
        if super().should_stop():
            return True
        rule = self.stop_rule
        best = self.best()
        if rule is None or self.pending:
            return False
        if best is not None and self.no_trial_pays():
            return True
        if len(self.observations) < rule.min_trials:
            return False
        if best is None:
            return self.hopeless()
        if rule.confidence is not None:
            chance = self.confidence(rule.within)
            return chance is not None and chance >= rule.confidence
        scores = self.scores()
        incumbent = self.problem.objective.value(best.runtime_s, best.cost_usd)
        return bool(scores.saving.max() < rule.ei_fraction * incumbent)

    def no_trial_pays(self) -> bool:
        """True when trials have a known cost and, by the model, none is expected to save more
        on the job than it costs: searching on would cost more than it saves, at any trial count.
        """
        if self.trial_cost is None or not len(self.untried()) or self.best() is None:
            return False
        scores = self.scores()
        assert scores.trial_cost is not None
        return bool(np.all(scores.saving <= scores.trial_cost))

    def outlook(self) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
        """Every untried candidate (best first), the model's predicted log of its objective
        value, the spread of that belief (calibrated, one run's noise left out) and its chance
        to complete and meet the limit."""
        scores = self.scores()
        cand, spread = scores.indices, self.spread()
        runtime = scores.log_cost - self.log_rate[cand]
        log_value, log_limited, limit = self._split(scores.log_cost, runtime)
        (_, model), *_ = self.models.items()
        latent = model.latent(scores.sigma) * spread
        p_ok = _p_ok(log_limited, limit, scores.sigma * spread, self._p_complete(cand))
        return cand, log_value, latent, p_ok

    def hopeless(self) -> bool:
        """True when no trial has met the constraint and, by the model, no untried candidate
        has even a ``min_chance`` (stop rule) of meeting it: an impossible deadline or cost cap
        stops the search after ``min_trials`` instead of spending the whole budget."""
        rule = self.stop_rule
        no_model = self.prior is None and not self._has_completed()
        if rule is None or self.best() is not None or not len(self.untried()) or no_model:
            return False
        chance = self.scores().chance
        return chance is not None and float(chance.max()) < rule.min_chance
