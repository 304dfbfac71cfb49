"""How close dry-run searches come to the true optimum: ``cherrypick bench dryrun``.

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
its count is printed as ``truly``; ``untried recs``: how many recommendations are configurations
the search did not try (cost-aware searches). Below each case's line: the mean search spend over
the true optimal job's cost, search plus the recommended job (as it truly runs) over it, and what
a user who does not search pays for the job on each of ``nosearch``'s picks (``late``: the share of
seeds on which that pick truly misses the deadline or fails). After the cases, the reliability
of the searches' P(within 10%). ``--cost-aware``: the searches weigh each trial's cost against
what it may save (``stop.cost_aware``). ``--noise`` overrides the runs' noise (lognormal sigma,
0.05); ``--memory-error`` sets the simulator's per-GPU memory error (lognormal sigma, 0: off),
so that the truth's out-of-memory verdicts are not the prior's (``SimulatorSpec``).
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np

from cherrypick.bench._harness import Progress, parallel_map, require
from cherrypick.bench.exhaustive import check_against_truth, evaluate_all, runtime_of, true_choice
from cherrypick.bench.nosearch import NO_SEARCH, no_search_picks
from cherrypick.bench.reliability import format_reliability, reliability_rows
from cherrypick.providers.base import Candidate
from cherrypick.searching import run_search
from cherrypick.searching.setup import build_providers, build_space, build_workload
from cherrypick.spec import SearchSpec, load_spec, parse_spec
from cherrypick.units import job_cost

__all__ = ["Outcome", "format_outcomes", "run_case", "run_cases"]

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
    #: The search's spend and, as they truly run, the optimal and the recommended job's cost.
    spend_usd: float = 0.0
    optimum_usd: float | None = None
    job_usd: float | None = None
    #: P(within 10%) as the search reported it, and the no-search picks' true job cost over the
    #: optimum's (None: the pick truly misses the deadline or fails).
    confidence: float | None = None
    no_search: dict[str, float | None] = field(default_factory=dict)
    #: The recommendation is a configuration the search did not try (the model's prediction).
    untried: bool = False

    @property
    def close(self) -> bool:
        """Within ``WITHIN`` of the true optimum, and truly within the deadline."""
        return self.gap is not None and self.gap <= WITHIN and not self.truly_late

    @property
    def within_10(self) -> bool:
        return self.gap is not None and self.gap <= 0.10 + 1e-9 and not self.truly_late


def _example(name: str) -> SearchSpec:
    return load_spec(str(files("cherrypick.configs") / "examples" / f"{name}.yaml"))


def run_case(
    example: str,
    fraction: float,
    seed: int,
    stop: dict[str, float],
    prior: str | None = None,
    noise: float | None = None,
    memory_error: float | None = None,
) -> Outcome:
    base = _example(example).model_dump(mode="json")
    base["seed"] = seed
    if prior is not None:
        base["prior"] = prior
    if noise is not None:
        base["simulator"]["noise"] = noise
    if memory_error is not None:
        base["simulator"]["memory_error"] = memory_error
    base["stop"].update(stop)
    spec = parse_spec(base)
    space, workload = build_space(spec), build_workload(spec)
    candidates = space.catalog
    # The deadline at which ``fraction`` of the candidates that run finish in time, truly.
    truth = build_providers(space, True, spec, run_noise=False)
    runtimes = [runtime_of(c, workload, truth, spec.trial_timeout_s) for c in candidates]
    deadline = float(np.quantile([r for r in runtimes if r is not None], fraction))
    spec = parse_spec({**base, "objective": {"kind": "cost", "max_runtime_s": deadline}})
    with tempfile.TemporaryDirectory() as scratch:
        result = run_search(
            spec,
            dry_run=True,
            store_path=Path(scratch) / "s.sqlite",
            workload=workload,
            space=space,
        )
    check = check_against_truth(spec, space, workload, result)
    tried_feasible = any(
        r.status == "ok" and r.runtime_s is not None and r.runtime_s <= deadline
        for r in result.rows
    )
    rec = result.recommendation
    bad = tried_feasible and (rec is None or rec.runtime_s > deadline)
    noisy = build_providers(space, True, spec)
    measured = evaluate_all(candidates, workload, noisy, result.objective, spec.trial_timeout_s)
    measured_gap = (
        None if rec is None or measured is None else rec.cost_usd / measured.cost_usd - 1.0
    )
    true_rec = check.recommendation_true
    late = true_rec is not None and true_rec.runtime_s > deadline
    # What exhaustive search achieves at this noise: the sweep's best run, as it truly runs.
    sweep = true_choice(measured, candidates, workload, truth)
    optimum = check.optimum
    sweep_close = (
        sweep is not None
        and optimum is not None
        and sweep.runtime_s <= deadline
        and sweep.cost_usd <= (1.0 + WITHIN) * optimum.cost_usd
    )
    optimum_usd = None if optimum is None else optimum.cost_usd
    return Outcome(
        example,
        fraction,
        seed,
        check.gap,
        measured_gap,
        result.trials_used,
        bad,
        late,
        sweep_close,
        spend_usd=result.search_cost_usd,
        optimum_usd=optimum_usd,
        job_usd=None if true_rec is None else true_rec.cost_usd,
        confidence=result.confidence,
        no_search=_no_search(candidates, runtimes, deadline, optimum_usd),
        untried=rec is not None and rec.trial_id is None,
    )


def _no_search(
    candidates: Sequence[Candidate],
    runtimes: Sequence[float | None],
    deadline: float,
    optimum_usd: float | None,
) -> dict[str, float | None]:
    """Each no-search pick's true job cost over the optimum's; None where it is late or fails."""
    ratios: dict[str, float | None] = {}
    for rule, i in no_search_picks(candidates, runtimes, deadline).items():
        runtime = None if i is None else runtimes[i]
        if i is None or runtime is None or runtime > deadline or not optimum_usd:
            ratios[rule] = None
        else:
            ratios[rule] = job_cost(candidates[i].price_per_hour, runtime) / optimum_usd
    return ratios


def _summary(label: str, outcomes: list[Outcome]) -> str:
    close = sum(o.close for o in outcomes)
    late = sum(o.truly_late for o in outcomes)
    close_measured = sum(o.measured_gap is not None and o.measured_gap <= WITHIN for o in outcomes)
    sweep = sum(bool(o.sweep_close) for o in outcomes)
    median = statistics.median(o.trials for o in outcomes)
    bad = sum(o.bad_recommendation for o in outcomes)
    untried = sum(o.untried for o in outcomes)
    gaps = [o.gap for o in outcomes if o.gap is not None]
    gap = f"{statistics.median(gaps):6.1%}" if gaps else "   n/a"
    return (
        f"{label:<30} searches {len(outcomes):>4}  within {WITHIN:.0%}: "
        f"{close / len(outcomes):6.1%} (vs noisy sweep {close_measured / len(outcomes):6.1%};"
        f" the noisy sweep itself {sweep / len(outcomes):6.1%})"
        f"  median gap {gap}  median trials {median:4.1f}"
        f"  infeasible recs {bad} (truly {late})" + (f"  untried recs {untried}" if untried else "")
    )


def run_cases(
    seeds: int = 30,
    jobs: int | None = None,
    ei_fraction: float | None = None,
    min_trials: int | None = None,
    prior: str | None = None,
    noise: float | None = None,
    memory_error: float | None = None,
    progress: Progress | None = None,
    cost_aware: bool = False,
) -> list[Outcome]:
    """Every case, EXAMPLES x FRACTIONS x seeds in that order, in ``jobs`` processes (default:
    all cores). The other parameters, when given, override the examples' own."""
    # The spec's bounds, checked here: the spec itself would reject them only in the workers.
    require(seeds >= 1, "--seeds", ">= 1", seeds)
    require(ei_fraction is None or ei_fraction >= 0, "--ei-fraction", ">= 0", ei_fraction)
    require(min_trials is None or min_trials >= 1, "--min-trials", ">= 1", min_trials)
    require(noise is None or 0 <= noise <= 1, "--noise", "in [0, 1]", noise)
    memory_ok = memory_error is None or 0 <= memory_error <= 1
    require(memory_ok, "--memory-error", "in [0, 1]", memory_error)
    overrides = (("ei_fraction", ei_fraction), ("min_trials", min_trials))
    stop: dict[str, float] = {k: v for k, v in overrides if v is not None}
    if cost_aware:
        stop["cost_aware"] = True
    tasks = [
        (e, f, s, stop, prior, noise, memory_error)
        for e in EXAMPLES
        for f in FRACTIONS
        for s in range(seeds)
    ]
    return parallel_map(_run_case, tasks, jobs, progress)


_Task = tuple[str, float, int, dict[str, float], str | None, float | None, float | None]


def _run_case(task: _Task) -> Outcome:
    return run_case(*task)


def _spend(outcomes: list[Outcome]) -> str:
    """Spend and search plus job over the optimal job, beside the no-search picks' jobs."""
    paired = [o for o in outcomes if o.optimum_usd]
    if not paired:
        return ""
    spend = statistics.mean(o.spend_usd / (o.optimum_usd or 1.0) for o in paired)
    done = [o for o in paired if o.job_usd is not None]
    total = (
        statistics.mean((o.spend_usd + (o.job_usd or 0.0)) / (o.optimum_usd or 1.0) for o in done)
        if done
        else math.inf
    )
    none = f" ({len(paired) - len(done)} with no recommendation)" if len(done) < len(paired) else ""
    worst = max(o.spend_usd / (o.optimum_usd or 1.0) for o in paired)
    picks = []
    for rule in NO_SEARCH:
        ratios = [o.no_search.get(rule) for o in paired]
        fine = [r for r in ratios if r is not None]
        late = 1 - len(fine) / len(ratios)
        mean = f"{statistics.mean(fine):.2f}x" if fine else "  - "
        picks.append(f"{rule} {mean} (late {late:.0%})")
    return (
        f"{'':<30} spend / optimal job {spend:5.2f}x (worst {worst:.2f}x)  search + job"
        f" {total:5.2f}x{none}  no search: {', '.join(picks)}"
    )


def format_outcomes(outcomes: list[Outcome]) -> str:
    """Two lines per example and deadline, the pooled lines, then the reliability table."""
    lines = []
    for example in EXAMPLES:
        for fraction in FRACTIONS:
            chosen = [o for o in outcomes if o.example == example and o.fraction == fraction]
            if not chosen:
                continue
            lines += [_summary(f"{example} {fraction:.0%} feasible", chosen), _spend(chosen)]
    lines += [_summary("pooled", outcomes), _spend(outcomes)]
    rows = reliability_rows([o.confidence for o in outcomes], [o.within_10 for o in outcomes])
    lines += ["", format_reliability(rows, 0.10)]
    return "\n".join(line for line in lines if line)
