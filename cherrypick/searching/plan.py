"""From command-line arguments to the search to run: a new one from a file, or a stored one.

A resumed search needs no search file: the store keeps the specification it ran under.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cherrypick.errors import InputError
from cherrypick.spec import SearchSpec, load_spec, parse_spec
from cherrypick.store import TrialStore

__all__ = ["Plan", "prepare"]


@dataclass(frozen=True)
class Plan:
    spec: SearchSpec
    dry_run: bool
    store_path: Path


def prepare(
    file: str | None,
    resume: str | None,
    store: str | None,
    dry_run: bool,
    seed: int | None = None,
    parallel: int | None = None,
) -> Plan:
    if resume is not None:
        return _resume(file, resume)
    if file is None:
        raise InputError("give a search file, or --resume STORE to continue a stored search")
    spec = _override(load_spec(file), file, seed=seed, parallel=parallel)
    path = Path(store if store is not None else spec.store)
    if _holds_search(path):
        raise InputError(
            f"{path} already holds a search; continue it with --resume {path}, or pass --store"
            " with a new path"
        )
    return Plan(spec, dry_run, path)


def _resume(file: str | None, store: str) -> Plan:
    with TrialStore(store, create=False) as opened:
        stored = opened.spec() if opened.has_search() else None
    if stored is None:
        raise InputError(f"{store} holds no search to resume")
    dry_run = bool(stored.pop("dry_run", False))
    # With a file, the store checks it is the same search; without, the stored spec is used.
    spec = load_spec(file) if file is not None else parse_spec(stored, source=store)
    return Plan(spec, dry_run, Path(store))


def _override(spec: SearchSpec, source: str, **changes: Any) -> SearchSpec:
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        return spec
    return parse_spec({**spec.model_dump(mode="json"), **given}, source=source)


def _holds_search(path: Path) -> bool:
    if not path.is_file():
        return False
    with TrialStore(path, create=False) as opened:
        return opened.has_search()
