"""A temporary OpenSSH server on loopback, for benchmarks and tests of the SSH paths.

:class:`Sshd` runs the system's ``sshd`` as the current user, in a folder of its own: fresh
host and client keys, and a config that listens on 127.0.0.1 and on more loopback addresses
(every address of 127/8 is this machine on Linux, so an inventory can list them as distinct
hosts), where only the client key may log in. It can stop (dropping every open session, as a
crashed or rebooted host does), start again on the same port with the same keys, and rotate its
host key (an impostor, or a reinstalled host). A server that cannot start raises
:class:`~cherrypick.errors.RunnerError` carrying sshd's log.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cherrypick.errors import RunnerError

if TYPE_CHECKING:
    from cherrypick.runners.ssh import SSHRunner

__all__ = ["LOOPBACK_ALIASES", "Sshd", "free_port", "keygen", "loopback_aliases"]

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
#: Where sshd running as root wants its privilege separation folder.
PRIVSEP_DIR = Path("/run/sshd")
START_LIMIT_S = 10.0
#: The most addresses besides 127.0.0.1 a server listens on (127.0.0.2 to 127.0.0.254).
MAX_ALIASES = 253


def loopback_aliases(count: int) -> tuple[str, ...]:
    """``count`` addresses of this machine besides 127.0.0.1: 127.0.0.2, 127.0.0.3, ..."""
    if not 0 <= count <= MAX_ALIASES:
        raise ValueError(f"between 0 and {MAX_ALIASES} loopback aliases, not {count}")
    return tuple(f"127.0.0.{n}" for n in range(2, 2 + count))


#: The addresses a server listens on besides 127.0.0.1 unless told otherwise.
LOOPBACK_ALIASES = loopback_aliases(4)


@dataclass
class Sshd:
    """One server: where it listens, who logs in with which key, and its host key line.

    ``directory`` (which must exist) receives the keys, the config, the pid file and the log.
    """

    directory: Path
    port: int
    host: str = "127.0.0.1"
    aliases: tuple[str, ...] = LOOPBACK_ALIASES
    user: str = field(default_factory=getpass.getuser)
    client_key: Path = field(init=False)
    host_key_line: str = field(init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.client_key = self.directory / "client_ed25519"
        keygen(self.client_key)
        pub = self.client_key.with_name(self.client_key.name + ".pub")
        (self.directory / "authorized_keys").write_text(pub.read_text())
        self._make_host_key()
        (self.directory / "sshd_config").write_text(self._config())

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address it listens on, ``host`` first."""
        return (self.host, *self.aliases)

    @property
    def log(self) -> str:
        """What sshd wrote so far (for failure messages)."""
        path = self.directory / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def runner(self, **options: Any) -> SSHRunner:
        """An SSHRunner for this server that knows its host key (options override)."""
        from cherrypick.runners.ssh import SSHRunner

        settings: dict[str, Any] = {
            "key_file": str(self.client_key),
            "host_key": self.host_key_line,
            "connect_limit_s": 10.0,
        }
        settings.update(options)
        return SSHRunner(self.host, self.port, self.user, **settings)

    def start(self) -> None:
        """Start the server and wait until it accepts connections on every address."""
        _ensure_privsep_dir()
        with (self.directory / "sshd.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.directory / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + START_LIMIT_S
        waiting = list(self.addresses)
        while waiting:
            if _accepts(waiting[0], self.port):
                waiting.pop(0)
                continue
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                where = f"{SSHD} on {waiting[0]}:{self.port}"
                raise RunnerError(where, f"did not start; its log:\n{self.log}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill the server and every session it serves (their commands too): open connections
        drop at once, as when a host crashes. Detached processes (jobs) survive."""
        if self._proc is None:
            return
        for pid in _descendants(self._proc.pid):
            _kill(pid)
        self._proc.kill()
        self._proc.wait()
        self._proc = None

    def rotate_host_key(self) -> None:
        """Give the server a new host key and restart it."""
        self.stop()
        for path in self.directory.glob("host_ed25519*"):
            path.unlink()
        self._make_host_key()
        self.start()

    def _make_host_key(self) -> None:
        key = self.directory / "host_ed25519"
        keygen(key)
        self.host_key_line = " ".join(Path(f"{key}.pub").read_text().split()[:2])

    def _config(self) -> str:
        d = self.directory
        return "\n".join(
            [
                f"Port {self.port}",
                *(f"ListenAddress {address}" for address in self.addresses),
                f"HostKey {d / 'host_ed25519'}",
                f"AuthorizedKeysFile {d / 'authorized_keys'}",
                f"PidFile {d / 'sshd.pid'}",
                f"Subsystem sftp {SFTP_SERVER}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "StrictModes no",
                "UsePAM no",
                "PermitRootLogin yes",
                "UseDNS no",
                "PrintMotd no",
                "MaxStartups 100",
                "MaxSessions 100",
                "",
            ]
        )


def keygen(path: Path) -> None:
    """A new ed25519 key pair without passphrase at ``path`` and ``path.pub``."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cherrypick-sshd", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_privsep_dir() -> None:
    """sshd started by root refuses to run without its privilege separation folder (a
    container's /run is often empty); unprivileged, it needs none."""
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _descendants(root: int) -> list[int]:
    """Every process below ``root``, from /proc (children first found, then theirs)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
