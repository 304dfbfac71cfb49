"""The text files a user gives us (search files, profile configs, replay tables), read in one
place so that an unreadable or non-UTF-8 file is an error naming it, never a traceback."""

from __future__ import annotations

from pathlib import Path

from cherrypick.errors import InputError, ValidationError

__all__ = ["read_text"]


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
