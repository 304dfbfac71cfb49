"""The ``cherrypick`` command: a thin layer over the Python API.

Each subcommand lives in ``cherrypick.commands.<name>`` and provides ``add_arguments(parser)`` and
``run(args) -> int``. Errors become one line on stderr and an exit code here, in one place.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cherrypick.errors import CherrypickError

__all__ = ["main"]

COMMANDS = {
    "benchmark": "replay strategies on a table of measured runs and report how fast they converge",
    "profile": "train a CNN locally with per-layer profiling and print where the time goes",
    "search": "search the cloud (or the simulator, with --dry-run) for the cheapest configuration",
    "report": "tables and plots of a stored search",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="cherrypick", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, help_text in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # import only the module of the command being run
            importlib.import_module(f"cherrypick.commands.{name}").add_arguments(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(f"cherrypick.commands.{args.command}")
    try:
        return int(module.run(args))
    except CherrypickError as exc:
        print(f"cherrypick {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"cherrypick {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
