"""Output paths, checked before a command starts its work: one that cannot be written is an
InputError naming its flag now, not an OSError after the training or the report has run."""

from __future__ import annotations

import os
from pathlib import Path

from cherrypick.errors import InputError

__all__ = ["check_output"]


def check_output(path: Path, flag: str, *, folder: bool = False) -> None:
    """Refuse ``path`` unless it can be written: a file in an existing folder, or with
    ``folder`` a folder that exists or can be created with its parents."""
    problem = _folder_problem(path) if folder else _file_problem(path)
    if problem is not None:
        raise InputError(f"{flag} {path}: {problem}")


def _file_problem(path: Path) -> str | None:
    if path.is_dir():
        return "is a folder"
    parent = path.parent
    if not parent.is_dir():
        exists = parent.exists()
        return f"{parent} is not a folder" if exists else f"folder {parent} does not exist"
    return _unwritable(path if path.exists() else parent)


def _folder_problem(path: Path) -> str | None:
    # The folders that do not exist yet are created under the nearest one that does.
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        return "exists and is not a folder" if existing == path else f"{existing} is not a folder"
    return _unwritable(existing)


def _unwritable(path: Path) -> str | None:
    return None if os.access(path, os.W_OK) else f"{path} is not writable"
