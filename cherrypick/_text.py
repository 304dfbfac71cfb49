"""The text files a user gives us (search files, inventories, GPU datasheets, profile configs,
replay tables), read in one place so that an unreadable, non-UTF-8 or non-YAML file is an error
naming it (and the line), never a traceback; and pydantic's complaints said in our words."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cherrypick.errors import InputError, ValidationError

__all__ = ["field_message", "read_text", "yaml_with_lines"]


def read_text(path: Path | str, what: str) -> str:
    """The file's UTF-8 text; ``what`` names the kind of file in the error (``table``)."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {source}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte, line = data[exc.start], data.count(b"\n", 0, exc.start) + 1
        message = f"not UTF-8 text (byte 0x{byte:02x} at offset {exc.start})"
        raise ValidationError(source, message, line=line) from None


def yaml_with_lines(text: str, source: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """The document, and the line of every mapping key and list item by its path
    (``("hosts", "2", "port")``); bad YAML is a ``ValidationError`` with its line."""
    try:
        return yaml.safe_load(text), _key_lines(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = None if mark is None else mark.line + 1
        raise ValidationError(source, f"not valid YAML: {exc}".splitlines()[0], line=line) from None


def _key_lines(node: yaml.Node | None, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        children = [((*path, str(k.value)), k, v) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [((*path, str(i)), v, v) for i, v in enumerate(node.value)]
    else:
        return lines
    for child_path, anchor, value in children:
        lines[child_path] = anchor.start_mark.line + 1
        lines.update(_key_lines(value, child_path))
    return lines


def field_message(error: Mapping[str, Any], patterns: Mapping[str, str] | None = None) -> str:
    """One pydantic error in a user's words; ``patterns`` says what each regex stands for."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field (check its spelling)"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and patterns is not None:
        wanted = patterns.get(error.get("ctx", {}).get("pattern"), error["msg"])
        return f"{error.get('input')!r} is not allowed: expected {wanted}"
    return f"{error['msg']} (got {error.get('input')!r})"
