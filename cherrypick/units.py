"""Money and time, the same way everywhere: a job's cost from its price and runtime, and a
duration as people read it."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = ["format_duration", "job_cost", "plural"]

Number = TypeVar("Number", float, NDArray[np.float64])


def job_cost(price_per_hour: Number, seconds: Number) -> Number:
    """Dollars for ``seconds`` at ``price_per_hour`` (floats or arrays of them)."""
    return price_per_hour * seconds / 3600.0


def format_duration(seconds: float) -> str:
    """``42s``, ``4m12s``, ``2h05m``: to the second under an hour, to the minute above."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def plural(n: int, noun: str) -> str:
    """``1 trial``, ``2 trials``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
