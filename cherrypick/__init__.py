"""cherrypick: find the cloud configuration that trains your model within its deadline for the
least money, with a handful of trial runs (CherryPick-style Bayesian optimisation).

The public names are loaded on first use, so ``import cherrypick`` costs milliseconds and needs
no cloud SDK, torch or scikit-learn until they are used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Objective": "cherrypick.optimizer",
    "Observation": "cherrypick.optimizer",
    "Problem": "cherrypick.optimizer",
    "Recommendation": "cherrypick.optimizer",
    "StopRule": "cherrypick.optimizer",
    "Strategy": "cherrypick.optimizer",
    "BayesianStrategy": "cherrypick.optimizer",
    "BOConfig": "cherrypick.optimizer",
    "make_strategy": "cherrypick.optimizer",
    "strategy_registry": "cherrypick.optimizer",
    "benchmark": "cherrypick.bench.replay",
    "search": "cherrypick.api",
    "CherrypickError": "cherrypick.errors",
    "InputError": "cherrypick.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cherrypick' has no attribute '{name}'")
    module = importlib.import_module(_EXPORTS[name])
    value = getattr(module, name)
    globals()[name] = value
    return value
