"""``cherrypick profile``: train a CNN here with per-layer profiling and show where time goes.

Prints the per-layer table and the breakdown, saves the result JSON (``--output``), and with
``--plot`` writes a PNG of the per-layer bars and the breakdown. ``--no-profile`` trains the same
way with every hook off: the baseline for the profiler's overhead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cherrypick.commands._paths import check_output
from cherrypick.workloads.cnn.config import add_config_arguments, config_from_args
from cherrypick.workloads.cnn.report import format_report, plot_result
from cherrypick.workloads.cnn.result import write_result

_EXIT = {"ok": 0, "oom": 3, "error": 4}  # as python -m cherrypick.workloads.cnn.train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--output", default="result.json", help="result JSON (default: %(default)s)"
    )
    parser.add_argument(
        "--plot",
        nargs="?",
        const="",
        metavar="PNG",
        help="write a PNG of the layers and breakdown (default: the output's name with .png)",
    )


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    check_output(output, "--output")
    png = None if args.plot is None else Path(args.plot or output.with_suffix(".png"))
    if png is not None:
        check_output(png, "--plot")
    config = config_from_args(args)
    from cherrypick.workloads.cnn.runner import profile_run  # imports torch

    result = profile_run(config)
    write_result(result, output)
    print(format_report(result))
    print(f"\nwrote {output}")
    if png is not None and result["status"] == "ok":
        print(f"wrote {plot_result(result, png)}")
    return _EXIT[result["status"]]
