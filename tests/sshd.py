"""A real OpenSSH server on loopback, for the runner tests (a pytest plugin: see conftest.py).

Each test gets its own ``sshd`` with fresh host and client keys on a free port. The fixture can
stop the server (dropping every open session, as a crashed or rebooted host does), start it again
on the same port with the same keys, and rotate its host key (an impostor, or a reinstalled host).
It fails the test, never skips it, when the server cannot start.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
START_LIMIT_S = 10.0
#: Addresses of this machine besides 127.0.0.1 that the server also listens on (all of 127/8 is
#: the loopback interface on Linux).
LOOPBACK_ALIASES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")


@dataclass
class Sshd:
    """One server: where it listens, who logs in with which key, and its host key line."""

    directory: Path
    port: int
    host: str = "127.0.0.1"
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
    def log(self) -> str:
        """What sshd wrote so far (for failure messages)."""
        path = self.directory / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def runner(self, **options: Any) -> Any:
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
        """Start the server and wait until it accepts connections."""
        with (self.directory / "sshd.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.directory / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + START_LIMIT_S
        while not _accepts(self.host, self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"sshd did not start on port {self.port}:\n{self.log}")
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
                f"ListenAddress {self.host}",
                # More loopback addresses: an inventory's hosts are distinct machines to it.
                *(f"ListenAddress {alias}" for alias in LOOPBACK_ALIASES),
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


@pytest.fixture
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A running sshd on a free loopback port, stopped at teardown."""
    server = Sshd(tmp_path_factory.mktemp("sshd"), free_port())
    server.start()
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


def keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
