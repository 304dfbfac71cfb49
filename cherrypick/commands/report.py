"""``cherrypick report STORE``: the trial table, the recommendation, CSV, plots and HTML."""

from __future__ import annotations

import argparse
from pathlib import Path

from cherrypick.commands._paths import check_output


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

    out = args.out if args.out is not None else args.store.with_name(f"{args.store.stem}-report")
    check_output(out, "--out", folder=True)
    if args.csv is not None:
        check_output(args.csv, "--csv")
    report = load_report(args.store)
    print(format_table(report.frame) if len(report.frame) else "(no trials)")
    print()
    print(summary(report))
    files = write_report(report, out, args.html, csv_path=args.csv)
    print()
    for path in files.paths():
        print(f"wrote {path}")
    return 0
