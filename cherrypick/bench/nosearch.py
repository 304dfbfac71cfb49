"""What a user picks without a search, for the dry-run benchmark to set a search against.

Each rule names one candidate by what a user can see before any run (price, GPU, machine size),
except ``cheapest in time``, which knows the truth: the cheapest $/h configuration that truly
meets the deadline, the best a price-sorted trial and error could find for free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cherrypick.providers.base import Candidate

__all__ = ["NO_SEARCH", "no_search_picks"]

NO_SEARCH = ("cheapest $/h", "cheapest in time", "biggest box", "1x A100", "8x A100")


def _price(c: Candidate) -> float:
    return c.price_per_hour


def _a100(gpus: int) -> Callable[[Candidate], bool]:
    return lambda c: c.nodes == 1 and c.offering.gpus_per_node == gpus and "A100" in c.offering.gpu


def _biggest(c: Candidate) -> tuple[float, float, float]:
    o = c.offering
    return (-float(c.nodes == 1), -o.gpus_per_node * o.gpu_memory_gib, c.price_per_hour)


def no_search_picks(
    candidates: Sequence[Candidate], runtimes: Sequence[float | None], deadline: float | None
) -> dict[str, int | None]:
    """Each rule's pick, by index into ``candidates`` (None where no candidate fits the rule);
    ``runtimes``: how long each truly runs (None: it fails)."""
    indices = range(len(candidates))

    def in_time(i: int) -> bool:
        r = runtimes[i]
        return r is not None and (deadline is None or r <= deadline)

    def cheapest(keep: Callable[[int], bool]) -> int | None:
        return min(
            (i for i in indices if keep(i)), key=lambda i: _price(candidates[i]), default=None
        )

    return {
        "cheapest $/h": cheapest(lambda i: True),
        "cheapest in time": cheapest(in_time),
        "biggest box": min(indices, key=lambda i: _biggest(candidates[i]), default=None),
        "1x A100": cheapest(lambda i: _a100(1)(candidates[i])),
        "8x A100": cheapest(lambda i: _a100(8)(candidates[i])),
    }
