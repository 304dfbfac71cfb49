"""How close dry-run searches come to the true optimum: ``python -m cherrypick.bench.dryrun``.

For each bundled example (AlexNet, VGG-11, ResNet-50) and each deadline at which 30%, 50% and 80%
of the candidates that run are feasible, it runs one search per seed on the simulator, in-process,
and evaluates every candidate under the same seed, as the machines truly run (the simulated cloud's
departures from the performance model included, one run's noise not). It prints, per case and
pooled: the share of searches whose recommendation truly runs within 5% of the true optimum; the
same share against a sweep of noisy runs like the trials' (whose best is partly a lucky draw); how
often that sweep's own best run is truly within 5% of the true optimum and in time (what
exhaustive search achieves when it runs each candidate once); the median trials; and
how many searches recommended an infeasible configuration (or nothing) although they had tried a
feasible one. A recommendation whose run measured within the deadline but which truly runs past
it (one run's noise) is cheaper than the true optimum, not close to it: it counts as a miss, and
its count is printed as ``truly``. ``--noise`` overrides the runs' noise (lognormal sigma, 0.05).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from cherrypick.searching import run_search
from cherrypick.searching.setup import (
    build_candidates,
    build_providers,
    build_workload,
    evaluate_all,
    runtime_of,
    true_choice,
)
from cherrypick.spec import SearchSpec, load_spec, parse_spec

__all__ = ["Outcome", "main", "run_case"]

EXAMPLES = ("alexnet-10class", "vgg11-10class", "resnet50-imagenet")
FRACTIONS = (0.3, 0.5, 0.8)
WITHIN = 0.05


@dataclass(frozen=True)
class Outcome:
    example: str
    fraction: float
    seed: int
    gap: float | None
    measured_gap: float | None
    trials: int
    bad_recommendation: bool
    truly_late: bool = False
    sweep_close: bool | None = None

    @property
    def close(self) -> bool:
        """Within ``WITHIN`` of the true optimum, and truly within the deadline."""
        return self.gap is not None and self.gap <= WITHIN and not self.truly_late


def _example(name: str) -> SearchSpec:
    return load_spec(str(files("cherrypick.configs") / "examples" / f"{name}.yaml"))


def run_case(
    example: str,
    fraction: float,
    seed: int,
    stop: dict[str, float],
    prior: str | None = None,
    noise: float | None = None,
) -> Outcome:
    base = _example(example).model_dump(mode="json")
    base["seed"] = seed
    if prior is not None:
        base["prior"] = prior
    if noise is not None:
        base["simulator"]["noise"] = noise
    base["stop"].update(stop)
    spec = parse_spec(base)
    candidates, workload = build_candidates(spec), build_workload(spec)
    # The deadline at which ``fraction`` of the candidates that run finish in time, truly.
    truth = build_providers(candidates, True, spec, run_noise=False)
    runtimes = [runtime_of(c, workload, truth, spec.trial_timeout_s) for c in candidates]
    deadline = float(np.quantile([r for r in runtimes if r is not None], fraction))
    spec = parse_spec({**base, "objective": {"kind": "cost", "max_runtime_s": deadline}})
    with tempfile.TemporaryDirectory() as scratch:
        result = run_search(
            spec,
            dry_run=True,
            store_path=Path(scratch) / "s.sqlite",
            workload=workload,
            exhaustive=True,
        )
    tried_feasible = any(
        r.status == "ok" and r.runtime_s is not None and r.runtime_s <= deadline
        for r in result.rows
    )
    rec = result.recommendation
    bad = tried_feasible and (rec is None or rec.runtime_s > deadline)
    noisy = build_providers(candidates, True, spec)
    measured = evaluate_all(candidates, workload, noisy, result.objective, spec.trial_timeout_s)
    measured_gap = (
        None if rec is None or measured is None else rec.cost_usd / measured.cost_usd - 1.0
    )
    true_rec = result.recommendation_true
    late = true_rec is not None and true_rec.runtime_s > deadline
    # What exhaustive search achieves at this noise: the sweep's best run, as it truly runs.
    sweep = true_choice(measured, candidates, workload, truth)
    optimum = result.optimum
    sweep_close = (
        sweep is not None
        and optimum is not None
        and sweep.runtime_s <= deadline
        and sweep.cost_usd <= (1.0 + WITHIN) * optimum.cost_usd
    )
    return Outcome(
        example,
        fraction,
        seed,
        result.gap,
        measured_gap,
        result.trials_used,
        bad,
        late,
        sweep_close,
    )


def _summary(label: str, outcomes: list[Outcome]) -> str:
    close = sum(o.close for o in outcomes)
    late = sum(o.truly_late for o in outcomes)
    close_measured = sum(o.measured_gap is not None and o.measured_gap <= WITHIN for o in outcomes)
    sweep = sum(bool(o.sweep_close) for o in outcomes)
    median = statistics.median(o.trials for o in outcomes)
    bad = sum(o.bad_recommendation for o in outcomes)
    gaps = [o.gap for o in outcomes if o.gap is not None]
    gap = f"{statistics.median(gaps):6.1%}" if gaps else "   n/a"
    return (
        f"{label:<30} searches {len(outcomes):>4}  within {WITHIN:.0%}: "
        f"{close / len(outcomes):6.1%} (vs noisy sweep {close_measured / len(outcomes):6.1%};"
        f" the noisy sweep itself {sweep / len(outcomes):6.1%})"
        f"  median gap {gap}  median trials {median:4.1f}"
        f"  infeasible recs {bad} (truly {late})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cherrypick.bench.dryrun")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ei-fraction", type=float, help="override the examples' stop rule")
    parser.add_argument("--min-trials", type=int, help="override the examples' stop rule")
    parser.add_argument(
        "--prior", choices=("performance-model", "none"), help="override the examples' prior"
    )
    parser.add_argument(
        "--noise", type=float, help="override the simulated runs' noise (lognormal sigma, 0.05)"
    )
    args = parser.parse_args(argv)
    stop = {
        k: v
        for k, v in (("ei_fraction", args.ei_fraction), ("min_trials", args.min_trials))
        if v is not None
    }
    cases = [(e, f, s) for e in EXAMPLES for f in FRACTIONS for s in range(args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [
            pool.submit(run_case, e, f, s, stop, args.prior, args.noise) for e, f, s in cases
        ]
        outcomes = [future.result() for future in futures]
    for example in EXAMPLES:
        for fraction in FRACTIONS:
            chosen = [o for o in outcomes if o.example == example and o.fraction == fraction]
            print(_summary(f"{example} {fraction:.0%} feasible", chosen), flush=True)
    print(_summary("pooled", outcomes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
