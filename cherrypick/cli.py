"""The ``cherrypick`` command: a thin layer over the Python API.

Each subcommand lives in ``cherrypick.commands.<name>`` and provides ``add_arguments(parser)`` and
``run(args) -> int``. Errors become one line on stderr and an exit code here, in one place.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from cherrypick.errors import CherrypickError

__all__ = ["main"]

COMMANDS = {
    "bench": "benchmarks of the search: replay, dryrun, stop-bound, ask (see bench NAME --help)",
    "catalog": "list the offerings of the catalog, or refresh its files from the clouds' APIs",
    "cleanup": "list what cherrypick launched or reserved that no live search owns; end it",
    "doctor": "check each cloud's SDK, credentials and GPU quotas before a search, and how to fix",
    "profile": "train a CNN locally with per-layer profiling and print where the time goes",
    "search": (
        "find the cheapest configuration for a job (on your own machines over SSH, or on the"
        " simulated provider with --dry-run)"
    ),
    "report": "the trial table, recommendation, CSV and plots of a stored search",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


class _CommandParser(_Parser):
    """A subcommand's parser: an argument it does not know is its error, shown with its own
    usage (argparse leaves it to the top-level parser, whose usage does not help)."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed, extra


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="cherrypick", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser
    )
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
        with _sigterm_as_interrupt():
            code = int(module.run(args))
            sys.stdout.flush()  # a reader gone away fails here, not in Python's flush at exit
            return code
    except CherrypickError as exc:
        print(f"cherrypick {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"cherrypick {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): what is left to print has no one to read it, and
        # Python's flush at exit would fail again, so it goes to the null device.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a scheduler's stop) stops a command as Ctrl-C does: a search then
    terminates its machines and marks its store interrupted instead of dying mid-way."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a caller's thread keeps its own
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":
    raise SystemExit(main())
