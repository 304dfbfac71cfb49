"""What every benchmark shares: checks of its parameters that name the command's flag, and a
parallel map that reports progress."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from cherrypick.errors import InputError

__all__ = ["Progress", "parallel_map", "require"]

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[int, int], None]
"""Called with (done, total) after each task."""


def require(ok: bool, flag: str, rule: str, value: object) -> None:
    """Raise ``InputError("FLAG must be RULE, got VALUE")`` unless ``ok``."""
    if not ok:
        raise InputError(f"{flag} must be {rule}, got {value}")


def parallel_map(
    fn: Callable[[T], R], tasks: Sequence[T], jobs: int | None, progress: Progress | None
) -> list[R]:
    """``fn`` over ``tasks`` in order, in ``jobs`` processes (default: all cores; 1: here)."""
    require(jobs is None or jobs >= 1, "--jobs", ">= 1", jobs)
    jobs = jobs or os.cpu_count() or 1
    with contextlib.ExitStack() as stack:
        if jobs == 1:
            results: Iterable[R] = map(fn, tasks)
        else:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=jobs))
            # Chunks cut the pool's overhead per task; 16 per worker keep every worker busy to
            # the end when the tasks' lengths differ (model-based strategies against random).
            results = pool.map(fn, tasks, chunksize=max(1, len(tasks) // (jobs * 16)))
        done: list[R] = []
        for result in results:
            done.append(result)
            if progress:
                progress(len(done), len(tasks))
    return done
