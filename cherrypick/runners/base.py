"""The runner interface: how the search executes commands and moves files on one machine.

A runner only executes; it never launches or terminates machines (that is a provider's job). Three
kinds exist: :class:`~cherrypick.runners.ssh.SSHRunner` (paramiko, for cloud VMs and inventory
hosts), :class:`~cherrypick.runners.local.LocalRunner` (a subprocess on this machine) and the
simulated provider's own answer (the performance model, no command runs). Long jobs do not hold a
runner's connection: :class:`~cherrypick.runners.job.RemoteJob` starts them detached and polls
them over fresh connections.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TextIO

__all__ = ["CommandResult", "Runner"]

#: How many characters of a command's stdout and stderr a result keeps (the log has them all).
TAIL_CHARS = 4000


@dataclass(frozen=True)
class CommandResult:
    """How a command ended: its exit status and the tails of its output streams."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Runner(ABC):
    """Runs shell commands on one machine (``bash -c``), and copies files to and from it.

    ``run`` streams both output streams as they come into ``log`` (when given) and raises
    :class:`~cherrypick.errors.CommandTimeout` past ``timeout_s`` after killing the command's
    whole process group; an exit status that is not 0 is a result, not an error. A machine that
    does not answer raises :class:`~cherrypick.errors.UnreachableError`.
    """

    #: What messages call this machine (``user@host:port``, ``local``).
    where: str = ""

    @abstractmethod
    def run(self, command: str, *, timeout_s: float, log: TextIO | None = None) -> CommandResult:
        """Run ``command`` and wait for it (at most ``timeout_s``)."""

    @abstractmethod
    def put(self, local: Path, remote: str) -> None:
        """Copy the local file ``local`` to the path ``remote`` on the machine."""

    @abstractmethod
    def get(self, remote: str, local: Path) -> None:
        """Copy the file ``remote`` on the machine to ``local``."""

    def close(self) -> None:
        """Release the connection (a closed runner may be used again: it reconnects)."""
        return None

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
