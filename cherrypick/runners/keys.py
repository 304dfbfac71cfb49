"""The search's own SSH key, and key fingerprints for messages.

A search logs in to the machines it launches with one ephemeral ed25519 key pair, made when the
search starts and deleted when it ends, so no long-lived key of the user's is put on a cloud VM.
The private key file is created with mode 0600 from the first byte: it is never readable by
anyone else, not even for an instant between writing and ``chmod``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SearchKey", "fingerprint"]

#: The comment of a search key's public line: it says on a machine whose key this is.
KEY_COMMENT = "cherrypick"
_PRIVATE_NAME = "id_ed25519"


@dataclass(frozen=True)
class SearchKey:
    """One search's key pair on disk: ``private_path`` (OpenSSH format) and its public line."""

    private_path: Path
    public_openssh: str

    @property
    def public_path(self) -> Path:
        return self.private_path.with_name(self.private_path.name + ".pub")

    @classmethod
    def create(cls, directory: Path) -> SearchKey:
        """Make a new key pair in ``directory`` (created 0700); fails if one is already there."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        private_path = directory / _PRIVATE_NAME
        _write_new(private_path, private, 0o600)
        line = f"{public.decode('ascii')} {KEY_COMMENT}"
        _write_new(private_path.with_name(_PRIVATE_NAME + ".pub"), (line + "\n").encode(), 0o644)
        return cls(private_path, line)

    @classmethod
    def load(cls, directory: Path) -> SearchKey | None:
        """The key pair already in ``directory`` (a resumed search), or None if there is none."""
        private_path = directory / _PRIVATE_NAME
        public_path = private_path.with_name(_PRIVATE_NAME + ".pub")
        if not (private_path.is_file() and public_path.is_file()):
            return None
        return cls(private_path, public_path.read_text(encoding="ascii").strip())

    def delete(self) -> None:
        """Remove both files, and their folder if nothing else is in it."""
        for path in (self.private_path, self.public_path):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.private_path.parent.rmdir()


def fingerprint(key_line: str) -> str:
    """The SHA256 fingerprint of an OpenSSH public key line, as ``ssh-keygen -l`` prints it."""
    fields = key_line.split()
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (IndexError, binascii.Error) as exc:
        raise ValueError("not an OpenSSH public key line ('type base64 [comment]')") from exc
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a file that must not exist yet, created with ``mode`` (never wider, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
