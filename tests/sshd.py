"""A real OpenSSH server on loopback, for the runner tests (a pytest plugin: see conftest.py).

Each test gets its own ``sshd`` (``cherrypick.bench.sshd.Sshd``) with fresh host and client keys
on a free port. It fails the test, never skips it, when the server cannot start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cherrypick.bench.sshd import LOOPBACK_ALIASES, Sshd, free_port, keygen
from cherrypick.errors import RunnerError

__all__ = ["LOOPBACK_ALIASES", "Sshd", "free_port", "keygen", "live_pids_in_group", "sshd"]


@pytest.fixture
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A running sshd on a free loopback port, stopped at teardown."""
    server = Sshd(tmp_path_factory.mktemp("sshd"), free_port())
    try:
        server.start()
    except RunnerError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


def live_pids_in_group(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still run (zombies are dead: this container's init does
    not reap orphans, so they linger in /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found
