"""From command-line arguments to the search to run: a new one from a file, or a stored one.

A resumed search needs no search file: the store keeps the specification it ran under. A new
search whose store already holds this very search, finished, runs nothing: its stored result is
shown again. Unless ``--store`` names one, a store holding another search is left alone and the
search goes to the next free numbered file (``search-2.sqlite``, ``search-3.sqlite``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from cherrypick.errors import InputError, ValidationError
from cherrypick.searching.result import SearchResult
from cherrypick.spec import SearchSpec, load_spec, parse_spec
from cherrypick.store import TrialStore

__all__ = ["Plan", "prepare"]

#: What a stored search keeps, by the flag that would change it.
_KEPT_BY_THE_STORE = {
    "store": "store",
    "seed": "seed",
    "parallel": "parallelism",
    "trials": "trial budget",
}


class _Held(NamedTuple):
    """The search a store holds: its stored spec (with ``dry_run``) and status."""

    spec: dict[str, Any]
    status: str


@dataclass(frozen=True)
class Plan:
    """The search to run, in ``store_path``; ``finished``: nothing to run, the store already
    holds this search's result. ``note``: a line telling the user which store it is."""

    spec: SearchSpec
    dry_run: bool
    store_path: Path
    finished: SearchResult | None = None
    note: str | None = None


def prepare(
    file: str | None,
    resume: str | None,
    store: str | None,
    dry_run: bool,
    seed: int | None = None,
    parallel: int | None = None,
    trials: int | None = None,
) -> Plan:
    if resume is not None:
        _refuse_with_resume(store=store, seed=seed, parallel=parallel, trials=trials)
        return _resume(file, resume)
    if file is None:
        raise InputError("give a search file, or --resume STORE to continue a stored search")
    spec = _override(load_spec(file), seed=seed, parallel=parallel)
    if trials is not None:
        spec = _override_trials(spec, trials)
    return _new(spec, dry_run, store)


def _refuse_with_resume(**flags: Any) -> None:
    given = [name for name, value in flags.items() if value is not None]
    if given:
        raise InputError(
            f"{', '.join('--' + name for name in given)} with --resume: the stored search keeps"
            f" its own {' and '.join(_KEPT_BY_THE_STORE[name] for name in given)}"
        )


def _resume(file: str | None, store: str) -> Plan:
    with TrialStore(store, create=False) as opened:
        stored = opened.spec() if opened.has_search() else None
    if stored is None:
        raise InputError(f"{store} holds no search to resume")
    dry_run = bool(stored.pop("dry_run", False))
    # With a file, the store checks it is the same search; without, the stored spec is used.
    spec = load_spec(file) if file is not None else parse_spec(stored, source=store)
    return Plan(spec, dry_run, Path(store))


def _override(spec: SearchSpec, **changes: Any) -> SearchSpec:
    """The file's search with the flags given; a value that makes it invalid is the flag's."""
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        return spec
    try:
        return parse_spec({**spec.model_dump(mode="json"), **given}, source="command line")
    except ValidationError as exc:
        # The file alone was valid, so a flag made it invalid: the one named, or all given.
        blamed = [exc.field] if exc.field is not None and exc.field in given else list(given)
        flags = ", ".join(f"--{name} {given[name]}" for name in blamed)
        raise InputError(f"{flags}: {exc.message}") from None


def _override_trials(spec: SearchSpec, trials: int) -> SearchSpec:
    data = spec.model_dump(mode="json")
    data["budget"] = {**data["budget"], "max_trials": trials}
    try:
        return parse_spec(data, source="command line")
    except ValidationError as exc:
        raise InputError(f"--trials {trials}: {exc.message}") from None


def _new(spec: SearchSpec, dry_run: bool, store: str | None) -> Plan:
    identity = {**spec.identity(), "dry_run": dry_run}  # what run_search stores as the spec
    if store is not None:
        path = Path(store)
        held = _held(path)
        if held is not None and held.spec != identity:
            raise InputError(
                f"{path} already holds another search; pass --store with a new path, or"
                f" --resume {path} to continue that one"
            )
        return _in(path, held, spec, dry_run, note=None)
    base = path = Path(spec.store)
    n = 1
    while (held := _held(path)) is not None and held.spec != identity:
        n += 1
        path = base.with_name(f"{base.stem}-{n}{base.suffix}")
    return _in(path, held, spec, dry_run, note=None if n == 1 else f"store: {path}")


def _held(path: Path) -> _Held | None:
    """The search in ``path``; None if it holds none yet."""
    if not path.is_file():
        return None
    with TrialStore(path) as opened:  # not create=False: an empty file is a store to begin
        return _Held(opened.spec(), opened.status()) if opened.has_search() else None


def _in(
    path: Path,
    held: _Held | None,
    spec: SearchSpec,
    dry_run: bool,
    note: str | None,
) -> Plan:
    """The plan for this search in ``path``, which holds it (``held``) or no search at all."""
    if held is None:
        return Plan(spec, dry_run, path, note=note)
    if held.status != "finished":
        raise InputError(
            f"{path} holds this search, not finished ({held.status}); continue it with"
            f" --resume {path}"
        )
    again = (
        f"{path}: this search already finished; its result follows (delete the file or pass"
        " --store to run it again)"
    )
    return Plan(spec, dry_run, path, finished=_stored_result(path), note=again)


def _stored_result(path: Path) -> SearchResult:
    with TrialStore(path, create=False) as opened:
        data, rows = opened.result(), opened.trials()
    try:
        return SearchResult.from_json(data or {}, rows)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(
            str(path), f"not a result this cherrypick reads ({exc!r})", field="search.result"
        ) from None
