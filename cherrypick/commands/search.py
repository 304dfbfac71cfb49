"""``cherrypick search FILE.yaml [--dry-run]``: run a search file (or show it again, finished in
its store), or resume a stored search."""

from __future__ import annotations

import argparse
import json
import sys

from cherrypick.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="the search file (YAML); optional with --resume")
    parser.add_argument(
        "--dry-run", action="store_true", help="run trials on the simulated provider, spend nothing"
    )
    parser.add_argument("--store", help="trial store path (default: the search file's 'store')")
    parser.add_argument(
        "--resume", metavar="STORE", help="continue the search stored in STORE (a killed search)"
    )
    parser.add_argument(
        "--exhaustive",
        action="store_true",
        help="dry runs: also evaluate every candidate and report the true optimum",
    )
    parser.add_argument("--seed", type=int, help="override the search file's seed")
    parser.add_argument("--parallel", type=int, help="override the search file's parallelism")
    parser.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="override budget.max_trials; 0: no trial, the performance model's pick",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="search even when the performance model says no candidate can do the job as asked",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no per-trial lines on stderr")


def run(args: argparse.Namespace) -> int:
    from cherrypick.searching import format_summary, make_display, run_search
    from cherrypick.searching.plan import prepare
    from cherrypick.searching.setup import build_space, build_workload

    plan = prepare(
        args.file, args.resume, args.store, args.dry_run, args.seed, args.parallel, args.trials
    )
    if args.exhaustive and not plan.dry_run:
        raise InputError("--exhaustive needs a dry run (it runs every candidate)")
    display = None if args.quiet else make_display()
    space, workload = build_space(plan.spec), build_workload(plan.spec)
    if plan.note is not None:
        print(plan.note, file=sys.stderr)
    try:
        result = plan.finished or run_search(
            plan.spec,
            dry_run=plan.dry_run,
            store_path=plan.store_path,
            workload=workload,
            display=display,
            space=space,
            force=args.force,
        )
    finally:
        if display is not None:
            display.close()
    check = None
    if args.exhaustive:
        from cherrypick.bench.exhaustive import check_against_truth

        progress = None if display is None else display.message
        check = check_against_truth(plan.spec, space, workload, result, progress)
    if args.json:
        print(json.dumps({**result.to_json(), **(check.to_json() if check else {})}, indent=2))
    else:
        print("\n".join([format_summary(result), *(check.lines() if check else [])]))
    return 0
