"""``cherrypick report STORE``: the trial table, the recommendation, CSV, plots and HTML."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, help="the search's trial store (SQLite file)")
    parser.add_argument(
        "--out", type=Path, help="folder for the plots and files (default: STORE-report next to it)"
    )
    parser.add_argument(
        "--csv", type=Path, help="write the trial table here (default: OUT/trials.csv)"
    )
    parser.add_argument(
        "--html", action="store_true", help="also write one self-contained report.html"
    )


def run(args: argparse.Namespace) -> int:
    from cherrypick.report import format_table, load_report, summary, write_report

    report = load_report(args.store)
    print(format_table(report.frame) if len(report.frame) else "(no trials yet)")
    print()
    print(summary(report))
    out = args.out if args.out is not None else args.store.with_name(f"{args.store.stem}-report")
    files = write_report(report, out, args.html, csv_path=args.csv)
    print()
    for path in files.paths():
        print(f"wrote {path}")
    return 0
