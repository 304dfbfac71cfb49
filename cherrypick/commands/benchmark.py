"""``cherrypick benchmark``: replay strategies on a table of measured runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cherrypick.bench.replay import BenchmarkResult, benchmark, format_result
from cherrypick.bench.tables import load_table, select_workloads
from cherrypick.optimizer import StopRule


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--table",
        required=True,
        type=Path,
        action="append",
        help="CSV of measured runs (repeatable)",
    )
    parser.add_argument("--workload", action="append", help="workload(s) to use (default: all)")
    parser.add_argument(
        "--strategy",
        action="append",
        help="strategy name, repeatable (default: cherrypick, random)",
    )
    parser.add_argument("--seeds", type=int, default=50, help="searches per workload (default 50)")
    parser.add_argument("--budget", type=int, default=30, help="trials per search (default 30)")
    deadline = parser.add_mutually_exclusive_group()
    deadline.add_argument(
        "--feasible-fraction", type=float, help="deadline at this quantile of completed runtimes"
    )
    deadline.add_argument("--max-runtime", type=float, help="deadline in seconds")
    parser.add_argument(
        "--stop-rule", action="store_true", help="also report where the EI stop rule stops"
    )
    parser.add_argument("--ei-fraction", type=float, default=0.10, help="stop rule threshold")
    parser.add_argument("--min-trials", type=int, default=6, help="stop rule minimum trials")
    parser.add_argument("--jobs", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    parser.add_argument(
        "--print-n", default="1,3,6,9,12,18,24,30", help="trial counts to print (JSON has all)"
    )


def run(args: argparse.Namespace) -> int:
    workloads = select_workloads([load_table(t) for t in args.table], args.workload)
    stop = StopRule(args.ei_fraction, args.min_trials) if args.stop_rule else None
    result = benchmark(
        workloads,
        args.strategy or ["cherrypick", "random"],
        seeds=args.seeds,
        budget=args.budget,
        feasible_fraction=args.feasible_fraction,
        max_runtime_s=args.max_runtime,
        stop_rule=stop,
        jobs=args.jobs,
        progress=_progress,
    )
    print(format_result(result, _print_n(args.print_n)))
    if args.json:
        _write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


def _print_n(text: str) -> set[int]:
    from cherrypick.errors import InputError

    try:
        return {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise InputError(f"--print-n expects numbers separated by commas, got '{text}'") from None


def _write_json(path: Path, result: BenchmarkResult) -> None:
    from cherrypick.errors import InputError

    try:
        path.write_text(json.dumps(result.as_dict(), indent=1, allow_nan=False) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty() or done == total or done % max(1, total // 10) == 0:
        end = "\n" if done == total else "\r" if sys.stderr.isatty() else "\n"
        sys.stderr.write(f"searches {done}/{total}{end}")
        sys.stderr.flush()
