"""``cherrypick bench NAME``: the benchmarks of the search (``cherrypick.bench``), one each.

Every value is checked before any search runs (a bad one is an InputError that names its flag);
progress goes to stderr, results to stdout and, with ``--json PATH``, to a file.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cherrypick.errors import InputError

if TYPE_CHECKING:  # the benchmarks are imported by the bench that runs, not by the parser
    from cherrypick.bench.tables import ReplayWorkload
    from cherrypick.optimizer import StopRule


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, (help_text, add, _) in _BENCHES.items():
        add(sub.add_parser(name, help=help_text, description=help_text))


def run(args: argparse.Namespace) -> int:
    _BENCHES[args.bench][2](args)
    return 0


def _add_replay(parser: argparse.ArgumentParser) -> None:
    _add_tables(parser, strategies="cherrypick, random", budget=30, suite=True)
    parser.add_argument(
        "--stop-rule", action="store_true", help="also report where the EI stop rule stops"
    )
    parser.add_argument(
        "--ei-fraction", type=float, metavar="F", default=0.10, help="stop rule threshold"
    )
    parser.add_argument(
        "--min-trials", type=int, metavar="N", default=6, help="stop rule minimum trials"
    )
    parser.add_argument(
        "--confidence",
        type=float,
        metavar="C",
        help="stop once P(within) reaches C instead (implies --stop-rule; the EI rule's stops"
        " are printed beside it)",
    )
    parser.add_argument(
        "--within",
        type=float,
        metavar="W",
        default=0.10,
        help="the share P(within) is about (default 0.10)",
    )
    _add_json(parser)
    parser.add_argument(
        "--print-n",
        default="1,3,6,9,12,18,24,30",
        metavar="N,N,...",
        help="trial counts to print (JSON has all)",
    )


def _run_replay(args: argparse.Namespace) -> None:
    from cherrypick.bench.replay import benchmark, format_result

    print_n = _print_n(args.print_n)
    _check_json(args.json)
    result = benchmark(
        _workloads(args),
        args.strategy or ["cherrypick", "random"],
        seeds=args.seeds,
        budget=args.budget,
        feasible_fraction=args.feasible_fraction,
        max_runtime_s=args.max_runtime,
        stop_rule=_stop_rule(args),
        jobs=args.jobs,
        progress=_progress,
    )
    print(format_result(result, print_n))
    _write_json(args.json, result.as_dict())


def _stop_rule(args: argparse.Namespace) -> StopRule | None:
    from cherrypick.optimizer import StopRule

    if args.confidence is not None and not 0 < args.confidence < 1:
        raise InputError(f"--confidence must be in (0, 1), got {args.confidence}")
    if not 0 < args.within <= 1:
        raise InputError(f"--within must be in (0, 1], got {args.within}")
    if not args.stop_rule and args.confidence is None:
        return None
    return StopRule(
        args.ei_fraction, args.min_trials, within=args.within, confidence=args.confidence
    )


def _add_stop_bound(parser: argparse.ArgumentParser) -> None:
    _add_tables(parser, strategies="cherrypick", budget=24)
    parser.add_argument(
        "--min-trials",
        type=int,
        metavar="N",
        default=6,
        help="the oracle stops no search before (default 6)",
    )
    parser.add_argument(
        "--cost-fraction",
        type=float,
        metavar="F",
        default=1 / 8,
        help="mean search cost limit, as a share of an exhaustive search (default 1/8)",
    )
    _add_json(parser)


def _run_stop_bound(args: argparse.Namespace) -> None:
    from cherrypick.bench.stop_bound import format_bound, stop_bound

    _check_json(args.json)
    rows = stop_bound(
        _workloads(args),
        args.strategy or ["cherrypick"],
        seeds=args.seeds,
        budget=args.budget,
        min_trials=args.min_trials,
        cost_fraction=args.cost_fraction,
        feasible_fraction=args.feasible_fraction,
        max_runtime_s=args.max_runtime,
        jobs=args.jobs,
        progress=_progress,
    )
    print(format_bound(rows, args.min_trials, args.budget))
    _write_json(args.json, rows)


def _add_dryrun(parser: argparse.ArgumentParser) -> None:
    _add_seeds(parser, 30, "example and deadline")
    _add_jobs(parser)
    parser.add_argument(
        "--ei-fraction", type=float, metavar="F", help="override the examples' stop rule"
    )
    parser.add_argument(
        "--min-trials", type=int, metavar="N", help="override the examples' stop rule"
    )
    parser.add_argument(
        "--cost-aware",
        action="store_true",
        help="searches weigh each trial's cost against what it may save (stop.cost_aware)",
    )
    parser.add_argument(
        "--prior", choices=("performance-model", "none"), help="override the examples' prior"
    )
    parser.add_argument(
        "--noise",
        type=float,
        metavar="SIGMA",
        help="override the simulated runs' noise (lognormal sigma, 0.05)",
    )
    parser.add_argument(
        "--memory-error",
        type=float,
        metavar="SIGMA",
        help="the simulator's per-GPU memory error (lognormal sigma; default 0, off; 0.5: as the"
        " prior assumes)",
    )
    _add_json(parser)


def _run_dryrun(args: argparse.Namespace) -> None:
    from cherrypick.bench.dryrun import format_outcomes, run_cases

    _check_json(args.json)
    outcomes = run_cases(
        args.seeds,
        args.jobs,
        args.ei_fraction,
        args.min_trials,
        args.prior,
        args.noise,
        args.memory_error,
        progress=_progress,
        cost_aware=args.cost_aware,
    )
    print(format_outcomes(outcomes))
    _write_json(args.json, [dataclasses.asdict(o) for o in outcomes])


def _add_ask(parser: argparse.ArgumentParser) -> None:
    _add_strategy(parser, "cherrypick")
    parser.add_argument(
        "--candidates",
        type=int,
        metavar="N",
        default=1000,
        help="candidates to choose from (default 1000)",
    )
    parser.add_argument(
        "--features", type=int, metavar="N", default=12, help="features per candidate (default 12)"
    )
    parser.add_argument(
        "--observations",
        type=int,
        metavar="N",
        default=30,
        help="trials told before the ask (default 30)",
    )
    parser.add_argument(
        "--repeat", type=int, metavar="N", default=20, help="timed calls (default 20)"
    )
    _add_json(parser)


def _run_ask(args: argparse.Namespace) -> None:
    from cherrypick.bench.ask import time_ask

    _check_json(args.json)
    timings = time_ask(
        args.strategy or ["cherrypick"],
        args.candidates,
        args.features,
        args.observations,
        args.repeat,
    )
    for timing in timings:
        print(timing.summary())
    _write_json(args.json, [dataclasses.asdict(t) for t in timings])


def _add_loopback(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trials",
        type=int,
        metavar="N",
        default=5,
        help="no-op trials timed for the overhead (default 5)",
    )
    _add_json(parser)


def _run_loopback(args: argparse.Namespace) -> None:
    from cherrypick.bench.loopback import format_loopback, run_loopback

    _check_json(args.json)
    result = run_loopback(args.trials, progress=functools.partial(_progress, noun="trials"))
    print(format_loopback(result))
    _write_json(args.json, result.as_dict())


def _add_stress_tables(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="folder to write the tables to"
    )
    _add_suite_seed(parser, "--seed")


def _run_stress_tables(args: argparse.Namespace) -> None:
    from cherrypick.bench.stress import write_tables

    for path in write_tables(args.out, *_seed(args.seed)):
        print(f"wrote {path}")


def _add_tables(
    parser: argparse.ArgumentParser, strategies: str, budget: int, suite: bool = False
) -> None:
    """The flags of the benchmarks that replay searches on tables of measured runs; with
    ``suite``, ``--suite stress`` (synthetic tables, ``cherrypick.bench.stress``) or tables."""
    source = parser.add_mutually_exclusive_group(required=True) if suite else parser
    if suite:
        source.add_argument(
            "--suite", choices=("stress",), help="the synthetic stress suite instead of tables"
        )
        _add_suite_seed(parser, "--suite-seed")
    source.add_argument(
        "--table",
        required=not suite,
        type=Path,
        action="append",
        metavar="CSV",
        help="table of measured runs (repeatable)",
    )
    parser.add_argument(
        "--workload",
        action="append",
        metavar="NAME",
        help="workload to use, repeatable (default: all)",
    )
    _add_strategy(parser, strategies)
    _add_seeds(parser, 50, "workload and strategy")
    parser.add_argument(
        "--budget",
        type=int,
        default=budget,
        metavar="N",
        help=f"trials per search (default {budget})",
    )
    deadline = parser.add_mutually_exclusive_group()
    deadline.add_argument(
        "--feasible-fraction",
        type=float,
        metavar="Q",
        help="deadline at this quantile of completed runtimes",
    )
    deadline.add_argument(
        "--max-runtime", type=float, metavar="SECONDS", help="deadline in seconds"
    )
    _add_jobs(parser)


def _add_suite_seed(parser: argparse.ArgumentParser, flag: str) -> None:
    parser.add_argument(
        flag, type=int, metavar="N", help="seed of the stress suite's tables (default: fixed)"
    )


def _add_strategy(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--strategy",
        action="append",
        metavar="NAME",
        help=f"strategy name, repeatable (default: {default})",
    )


def _add_seeds(parser: argparse.ArgumentParser, default: int, per: str) -> None:
    parser.add_argument(
        "--seeds",
        type=int,
        default=default,
        metavar="N",
        help=f"searches per {per} (default {default})",
    )


def _add_jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, metavar="N", help="processes (default: all cores)")


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON here")


def _workloads(args: argparse.Namespace) -> list[ReplayWorkload]:
    from cherrypick.bench.tables import load_table, select_workloads

    if args.table is None:
        from cherrypick.bench.stress import select_stress, stress_workloads

        return select_stress(stress_workloads(*_seed(args.suite_seed)), args.workload)
    if getattr(args, "suite_seed", None) is not None:
        raise InputError("--suite-seed goes with --suite, not --table")
    return select_workloads([load_table(t) for t in args.table], args.workload)


def _seed(value: int | None) -> tuple[int, ...]:
    """The stress suite's seed as arguments: none for its default."""
    return () if value is None else (value,)


def _print_n(text: str) -> set[int]:
    counts = [x.strip() for x in text.split(",") if x.strip()]
    if not all(c.isdecimal() and int(c) >= 1 for c in counts):
        raise InputError(f"--print-n must be trial counts >= 1 separated by commas, got '{text}'")
    return {int(c) for c in counts}


def _check_json(path: Path | None) -> None:
    """Before the searches, so that hours of them never end in a file that cannot be written."""
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"--json {path} is a folder")
    if not path.parent.is_dir():
        raise InputError(f"--json {path}: no folder {path.parent}")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise InputError(f"--json {path} is not writable")


def _write_json(path: Path | None, data: object) -> None:
    if path is None:
        return
    try:
        with path.open("w") as fh:
            json.dump(data, fh, indent=1, allow_nan=False)
            fh.write("\n")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    print(f"wrote {path}")


def _progress(done: int, total: int, noun: str = "searches") -> None:
    if sys.stderr.isatty() or done == total or done % max(1, total // 10) == 0:
        end = "\n" if done == total else "\r" if sys.stderr.isatty() else "\n"
        sys.stderr.write(f"{noun} {done}/{total}{end}")
        sys.stderr.flush()


_Add = Callable[[argparse.ArgumentParser], None]
_Run = Callable[[argparse.Namespace], None]
_BENCHES: dict[str, tuple[str, _Add, _Run]] = {
    "replay": (
        "replay strategies on tables of measured runs and report how fast they converge",
        _add_replay,
        _run_replay,
    ),
    "dryrun": (
        "dry-run searches of the bundled examples on the simulator against the true optimum",
        _add_dryrun,
        _run_dryrun,
    ),
    "stop-bound": (
        "what any stop rule could reach on tables of measured runs (an oracle's bound)",
        _add_stop_bound,
        _run_stop_bound,
    ),
    "stress-tables": (
        "write the stress suite's synthetic tables (bench replay --suite stress) as CSV files",
        _add_stress_tables,
        _run_stress_tables,
    ),
    "ask": ("time one ask() of each strategy over many candidates", _add_ask, _run_ask),
    "loopback": (
        "time a real search and each trial's overhead over SSH to this machine (a loopback sshd)",
        _add_loopback,
        _run_loopback,
    ),
}
