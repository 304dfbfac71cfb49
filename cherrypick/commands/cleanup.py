"""``cherrypick cleanup``: list what this tool launched or reserved that no live search owns, and
terminate or release it after confirmation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cherrypick.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        type=Path,
        action="append",
        help="a search's trial store (repeat for several; default: every store in this folder)",
    )
    parser.add_argument(
        "--provider",
        action="append",
        help="also list this provider's machines by their cherrypick tags (repeatable)",
    )
    parser.add_argument("--yes", action="store_true", help="terminate without asking")


def run(args: argparse.Namespace) -> int:
    from cherrypick.providers.base import provider_registry
    from cherrypick.searching.leftovers import (
        cleanup_searches,
        find_leftovers,
        terminate_leftovers,
    )

    stores = args.store if args.store else _stores_here()
    for path in stores:
        if not path.is_file():
            raise InputError(f"--store: no trial store at {path}")
    providers = {name: provider_registry.create(name) for name in args.provider or []}
    scans, tagged = find_leftovers(stores, providers)
    todo = []
    for scan in scans:
        if scan.live_owner is not None:
            print(f"{scan.path}: a live search owns it ({scan.live_owner}); left alone")
        elif scan.leftovers:
            todo.append(scan)
            for item in scan.leftovers:
                print(f"left running: {item.describe()}")
    for item in tagged:
        print(f"left running: {item.describe()}")
    count = sum(len(s.leftovers) for s in todo) + len(tagged)
    if count == 0:
        print("nothing left running")
        _print(cleanup_searches(scans))
        return 0
    if not args.yes and not _confirm(count):
        print("nothing terminated (run with --yes to terminate without asking)")
        return 1
    for scan in todo:
        for line in terminate_leftovers(scan.leftovers, scan.providers, scan.path):
            print(line)
    for line in terminate_leftovers(tagged, providers):
        print(line)
    _print(cleanup_searches(scans))
    return 0


def _print(lines: list[str]) -> None:
    for line in lines:
        print(line)


def _stores_here() -> list[Path]:
    """The cherrypick stores in the working directory (other SQLite files are skipped)."""
    from cherrypick.errors import StoreError
    from cherrypick.store import TrialStore

    found = []
    for path in sorted(Path.cwd().glob("*.sqlite")):
        try:
            with TrialStore(path, create=False):
                found.append(path)
        except StoreError:
            continue
    return found


def _confirm(count: int) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"terminate or release these {count}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")
