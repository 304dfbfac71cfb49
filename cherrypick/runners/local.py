"""Run commands on this machine: the runner of the ``local`` transport (and of the tests).

Each command is ``bash -c`` in a session of its own, so a timeout can kill everything it started
(its whole process group), as the SSH runner does on a remote machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, TextIO

from cherrypick.errors import CommandTimeout, RunnerError
from cherrypick.runners._output import StreamCapture, capture_pair
from cherrypick.runners.base import CommandResult, Runner

__all__ = ["KILL_GRACE_S", "LocalRunner"]

#: Seconds between TERM and KILL when a command's group is killed.
KILL_GRACE_S = 2.0

#: How long to wait for the output readers once the group is dead (a process that left the group
#: may still hold the pipes; its output is then lost, not waited for).
_READER_JOIN_S = 1.0


class LocalRunner(Runner):
    """Runs commands with this machine's bash; ``put`` and ``get`` are file copies."""

    where = "local"

    def run(self, command: str, *, timeout_s: float, log: TextIO | None = None) -> CommandResult:
        """Run ``command``, streaming its lines to ``log``; kill its group past ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        out, err = capture_pair(log)
        proc = subprocess.Popen(
            ["bash", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        readers = [_start_reader(proc.stdout, out), _start_reader(proc.stderr, err)]
        try:
            finished = _wait(proc, readers, deadline)
        finally:
            if not _wait(proc, readers, time.monotonic()):
                _kill_group(proc)
                for reader in readers:
                    reader.join(_READER_JOIN_S)
        if not finished:
            raise CommandTimeout(
                self.where, f"command ran past {timeout_s:g} s; its process group was killed"
            )
        return CommandResult(proc.returncode, out.tail, err.tail)

    def put(self, local: Path, remote: str) -> None:
        """Copy ``local`` to the path ``remote`` on this machine, creating its folder."""
        _copy(self.where, local, Path(remote))

    def get(self, remote: str, local: Path) -> None:
        """Copy the path ``remote`` on this machine to ``local``, creating its folder."""
        _copy(self.where, Path(remote), local)


def _start_reader(stream: IO[bytes], capture: StreamCapture) -> threading.Thread:
    """Read one pipe to its end in a thread: both pipes must drain while the command runs, or a
    command that fills one pipe blocks forever."""

    def read() -> None:
        with stream:
            for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
                capture.feed(chunk)
        capture.finish()

    thread = threading.Thread(target=read, name="cherrypick-local-output", daemon=True)
    thread.start()
    return thread


def _wait(proc: subprocess.Popen[bytes], readers: list[threading.Thread], deadline: float) -> bool:
    """Wait until the command exited and its output was read; False if the deadline came first."""
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    for reader in readers:
        reader.join(max(0.0, deadline - time.monotonic()))
    return not any(reader.is_alive() for reader in readers)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """TERM the command's whole group, then KILL what is left of it after a grace period."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _copy(where: str, source: Path, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    except OSError as exc:
        raise RunnerError(where, f"cannot copy {source} to {target}: {exc.strerror}") from exc
