"""Candidates that share a label (a GPU model) share their departure from the prior."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from skopt.learning.gaussian_process.kernels import Matern

from cherrypick.errors import InputError
from cherrypick.optimizer import Objective, Problem
from cherrypick.optimizer._model import Columns, GaussianProcess


def test_columns_applies_its_kernel_to_its_columns_only() -> None:
    x = np.random.default_rng(0).random((6, 5))
    base = Matern(length_scale=[0.5, 2.0], nu=2.5)
    cut = Columns(base, 1, 3)
    assert np.allclose(cut(x), base(x[:, 1:3]))
    assert np.allclose(cut(x, x[:2]), base(x[:, 1:3], x[:2, 1:3]))
    assert np.allclose(cut.diag(x), 1.0)
    k, grad = cut(x, eval_gradient=True)
    assert grad.shape == (6, 6, 2)  # one slice per length scale of the wrapped kernel
    assert [h.name for h in cut.hyperparameters] == ["kernel__length_scale"]
    fitted = clone(cut).clone_with_theta(np.log([0.3, 0.7]))
    assert np.allclose(fitted.kernel.length_scale, [0.3, 0.7])
    assert fitted == Columns(Matern(length_scale=[0.3, 0.7], nu=2.5), 1, 3)


def _departures(groups: bool) -> tuple[float, float]:
    """Two GPU models on a feature line; only GPU 0 runs 40% slower than the prior says.
    Trials on GPU 0 at one end; predictions at the other end, for GPU 0 and GPU 1."""
    features = np.linspace(0, 1, 20)[:, None]
    label = np.arange(20) % 2
    onehot = (label[:, None] == np.arange(2)).astype(float)
    x = np.hstack([features, onehot]) if groups else features
    model = GaussianProcess(1, seed=0, residual=True, groups=2 if groups else 0)
    tried = [0, 2, 4]
    model.fit(x[tried], np.full(3, np.log(1.4)))
    mu, _ = model.predict(x[[18, 19]])
    return float(mu[0]), float(mu[1])


def test_a_trial_moves_its_own_group_more_than_the_others() -> None:
    same, other = _departures(groups=True)
    assert same > np.log(1.4) * 0.5  # GPU 0 at the far end inherits most of the departure
    assert same - other > 0.1  # and GPU 1 next to it much less
    plain_same, plain_other = _departures(groups=False)
    assert abs(plain_same - plain_other) < 0.02  # without labels, only distance counts


def test_groups_need_one_label_per_candidate() -> None:
    with pytest.raises(InputError, match="one label per candidate"):
        Problem(np.zeros((3, 1)), np.ones(3), Objective(), groups=np.array([0, 1]))


def test_a_search_groups_its_candidates_by_gpu_model() -> None:
    from cherrypick.searching.setup import build_problem, build_space
    from cherrypick.spec import parse_spec

    spec = parse_spec(
        {"workload": {"name": "cnn"}, "filters": {"providers": ["aws"], "max_nodes": 2}}
    )
    space = build_space(spec)
    problem = build_problem(space, Objective())
    assert problem.groups is not None
    candidates = space.candidates
    assert len({c.offering.gpu for c in candidates}) > 3
    for i, a in enumerate(candidates):
        for j, b in enumerate(candidates[: i + 1]):
            assert (problem.groups[i] == problem.groups[j]) == (a.offering.gpu == b.offering.gpu)
