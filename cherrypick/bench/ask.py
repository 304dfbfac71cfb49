"""Time one ask() over many candidates: ``python -m cherrypick.bench.ask``.

Builds a synthetic cluster-like problem (runtime falls with resources, price rises with them),
tells the strategy all but the last of ``--observations`` trials, then ``--repeat`` times: copies
that state, tells the last trial and times the ask(1) that follows, as a search does each step.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np

from cherrypick.optimizer import Observation, Problem, make_strategy


def _problem(candidates: int, features: int, seed: int) -> tuple[Problem, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 5.0, size=(candidates, features))
    resources = x[:, : max(1, features // 2)].sum(axis=1)
    runtime = 300.0 + 36000.0 / np.exp2(resources / 2) * rng.lognormal(0.0, 0.05, candidates)
    price = 0.2 * np.exp2(resources / 2.5)
    return Problem(x, price), runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--features", type=int, default=12)
    parser.add_argument("--observations", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--strategy", default="cherrypick")
    args = parser.parse_args()
    problem, runtime = _problem(args.candidates, args.features, seed=0)
    search = make_strategy(args.strategy, problem, seed=0)
    for _ in range(args.observations - 1):
        (i,) = search.ask(1)
        search.tell(Observation(i, float(runtime[i])))
    (last,) = search.ask(1)
    times = []
    for _ in range(args.repeat):
        fresh = copy.deepcopy(search)
        fresh.tell(Observation(last, float(runtime[last])))
        start = time.perf_counter()
        fresh.ask(1)
        times.append((time.perf_counter() - start) * 1000)
    print(
        f"ask(1) over {args.candidates} candidates x {args.features} features with "
        f"{args.observations} observations ({args.strategy}): "
        f"median {statistics.median(times):.1f} ms, "
        f"max {max(times):.1f} ms over {args.repeat} calls"
    )


if __name__ == "__main__":
    main()
