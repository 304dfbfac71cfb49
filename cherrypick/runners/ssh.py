"""Run commands on a machine over SSH (paramiko): cloud VMs and inventory hosts.

The runner connects lazily, retrying with backoff until the connect limit (a fresh VM's sshd comes
up minutes after the VM "runs"), and reconnects on the next call after a dropped connection. Host
keys are never accepted blindly: a known key must match, and an unknown one is accepted only
through the trust-on-first-use callback, which records it.

Each command runs as ``bash -c`` in a session of its own (``setsid``) on the machine, after a tiny
``sh`` wrapper has printed its process group id, so a timeout can kill the whole group over a
second channel: closing the channel alone would leave the command running there.
"""

from __future__ import annotations

import posixpath
import select
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TextIO

import paramiko

from cherrypick.errors import CommandTimeout, HostKeyError, RunnerError, UnreachableError
from cherrypick.runners._output import StreamCapture, capture_pair
from cherrypick.runners._shell import kill_group
from cherrypick.runners.base import CommandResult, Runner
from cherrypick.runners.keys import fingerprint
from cherrypick.runners.local import KILL_GRACE_S

__all__ = ["SSHRunner"]

#: Most seconds between two connection attempts.
MAX_BACKOFF_S = 5.0
#: Authentication failures before giving up: a key that is refused once may be a VM whose
#: cloud-init has not installed it yet, but one that is refused twice will not be accepted.
AUTH_ATTEMPTS = 2
#: Time limit of the small commands the runner sends itself (mkdir, kill).
_HOUSEKEEPING_S = 30.0
#: How long a channel that closed without an exit status waits to learn the connection died.
_DROP_SETTLE_S = 1.0
_CHUNK = 65536

#: Host key algorithms by key type, so the server is asked for a key of the known type (a host
#: has keys of several types; the one paramiko prefers need not be the one we know).
_HOST_KEY_ALGORITHMS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}

#: Prints the group id first (``$$`` of a session leader is its group), then becomes the command.
#: Bash reads ~/.bashrc (which can be slow) when it thinks sshd started it, as for the login shell
#: that runs this, which has read it already. Its ``exec`` lowered SHLVL, so the command's bash
#: would think so too: raising SHLVL back says it is nested, as it is. The wrapper is ``sh`` for
#: the same reason.
_GROUP_MARK = b"cherrypick-pgid="
_PRINT_GROUP_THEN_RUN = (
    f'echo "{_GROUP_MARK.decode()}$$"; export SHLVL=$((${{SHLVL:-0}} + 1)); exec bash -c "$1"'
)


class SSHRunner(Runner):
    """Runs commands on ``user@host:port``, logging in with the private key ``key_file``.

    ``host_key`` is the machine's known key (``"ssh-ed25519 AAAA..."``); when it is None the first
    key seen is passed to ``on_new_host_key`` and trusted from then on; with neither, connecting
    is refused. Without ``key_file`` the SSH agent and ``~/.ssh`` keys are tried, as ssh does.
    Connecting gives up after ``connect_limit_s`` (plus at most one ``connect_timeout_s``).
    """

    def __init__(
        self,
        host: str,
        port: int = 22,
        user: str = "",
        key_file: str | None = None,
        host_key: str | None = None,
        *,
        on_new_host_key: Callable[[str], None] | None = None,
        connect_limit_s: float = 600.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.where = f"{user}@{host}:{port}" if user else f"{host}:{port}"
        self._host = host
        self._port = port
        self._user = user
        self._key_file = key_file
        self._host_key = host_key
        self._on_new_host_key = on_new_host_key
        self._connect_limit_s = connect_limit_s
        self._connect_timeout_s = connect_timeout_s
        self._pkey: paramiko.PKey | None = None
        self._client: paramiko.SSHClient | None = None

    @property
    def host_key(self) -> str | None:
        """The host key this runner trusts (the known one, or the one trusted on first use)."""
        return self._host_key

    def run(self, command: str, *, timeout_s: float, log: TextIO | None = None) -> CommandResult:
        """Run ``command``; ``timeout_s`` counts from when the connection is up."""
        client = self._connected()
        try:
            channel = client.get_transport().open_session(timeout=self._connect_timeout_s)
            channel.exec_command(_wrapped(command))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._fail(exc, "cannot start the command")
        with channel:
            return self._collect(channel, timeout_s, log)

    def put(self, local: Path, remote: str) -> None:
        """Copy ``local`` to ``remote`` over SFTP, creating the remote folder first."""
        parent = posixpath.dirname(remote)
        if parent:
            made = self.run(f"mkdir -p -- {shlex.quote(parent)}", timeout_s=_HOUSEKEEPING_S)
            if not made.ok:
                raise RunnerError(self.where, f"cannot create {parent}: {made.stderr.strip()}")
        with self._sftp(f"cannot copy {local} to {remote}") as sftp:
            sftp.put(str(local), remote)

    def get(self, remote: str, local: Path) -> None:
        """Copy ``remote`` over SFTP to ``local``, creating its folder; a failed copy leaves
        nothing (not an empty or partial file)."""
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(local.name + ".partial")
        with self._sftp(f"cannot copy {remote} to {local}") as sftp:
            try:
                sftp.get(remote, str(partial))
            except BaseException:
                partial.unlink(missing_ok=True)  # paramiko creates the file before reading
                raise
        partial.replace(local)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- connecting ----------------------------------------------------------------------------

    def _connected(self) -> paramiko.SSHClient:
        """The open connection, or a new one (the old one may have dropped since the last call)."""
        if self._client is not None and self._active():
            return self._client
        self.close()
        self._client = self._connect()
        return self._client

    def _active(self) -> bool:
        transport = None if self._client is None else self._client.get_transport()
        return transport is not None and bool(transport.is_active())

    def _connect(self) -> paramiko.SSHClient:
        """Connect, retrying with exponential backoff until the connect limit."""
        pkey = self._private_key()
        started = time.monotonic()
        delay, attempts, auth_failures = 0.5, 0, 0
        while True:
            attempts += 1
            try:
                return self._connect_once(pkey)
            except paramiko.AuthenticationException as exc:
                auth_failures += 1
                last = f"authentication failed ({type(exc).__name__})"
                if auth_failures >= AUTH_ATTEMPTS:
                    raise RunnerError(self.where, self._auth_message(auth_failures)) from None
            except (OSError, EOFError, paramiko.SSHException) as exc:
                last = _describe(exc)
            left = self._connect_limit_s - (time.monotonic() - started)
            if left <= 0:
                raise UnreachableError(
                    self.where,
                    f"no SSH connection after {time.monotonic() - started:.1f} s"
                    f" ({attempts} attempts); last error: {last}",
                )
            time.sleep(min(delay, left))
            delay = min(delay * 2, MAX_BACKOFF_S)

    def _connect_once(self, pkey: paramiko.PKey | None) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        # Nothing goes into the client's HostKeys, so paramiko asks the policy about every key.
        client.set_missing_host_key_policy(_HostKeyPolicy(self._check_host_key))
        timeout = self._connect_timeout_s
        try:
            client.connect(
                self._host,
                port=self._port,
                username=self._user or None,
                pkey=pkey,
                allow_agent=pkey is None,
                look_for_keys=pkey is None,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                disabled_algorithms=_other_host_key_algorithms(self._host_key),
            )
        except BaseException:
            client.close()
            raise
        client.get_transport().set_keepalive(30)
        return client

    def _private_key(self) -> paramiko.PKey | None:
        """The login key, read once: a missing or unreadable key file is no reason to retry."""
        if self._key_file is None or self._pkey is not None:
            return self._pkey
        try:
            self._pkey = paramiko.PKey.from_path(self._key_file)
        except (OSError, paramiko.SSHException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise RunnerError(
                self.where, f"cannot use the private key file {self._key_file}: {reason}"
            ) from None
        return self._pkey

    def _auth_message(self, failures: int) -> str:
        key = f"the key {self._key_file}" if self._key_file else "the agent's and ~/.ssh keys"
        return (
            f"authentication as '{self._user}' with {key} failed {failures} times;"
            " is its public key in the machine's authorized_keys?"
        )

    def _check_host_key(self, got: str) -> None:
        """Accept the server's key ``got`` only if it is the known one, or trusted on first use."""
        if self._host_key is None:
            if self._on_new_host_key is None:
                raise HostKeyError(
                    self.where,
                    f"no host key is known and trust on first use is off (server offers"
                    f" {fingerprint(got)}); refusing to connect",
                )
            self._on_new_host_key(got)
            self._host_key = got
            return
        if self._host_key.split()[:2] != got.split()[:2]:
            raise HostKeyError(
                self.where,
                f"the host key changed: expected {_describe_key(self._host_key)}, got"
                f" {_describe_key(got)}; refusing to connect",
            )

    # -- running -------------------------------------------------------------------------------

    def _collect(self, channel: Any, timeout_s: float, log: TextIO | None) -> CommandResult:
        """Wait for the command, then return how it ended; kill its group on the machine when
        it runs past ``timeout_s``, or when waiting for it fails (an interrupt, a broken log)."""
        stdout, stderr = capture_pair(log)
        group = _GroupHeader(stdout)
        try:
            finished = _pump(channel, group, stderr, time.monotonic() + timeout_s)
        except BaseException:
            self._kill(group.pgid)
            raise
        if not finished:
            self._kill(group.pgid)
            raise CommandTimeout(
                self.where, f"command ran past {timeout_s:g} s; its process group was killed"
            )
        group.finish()
        stderr.finish()
        return CommandResult(self._exit_status(channel), stdout.tail, stderr.tail)

    def _exit_status(self, channel: Any) -> int:
        """The command's exit status; a channel that closed without one may be a dropped
        connection (paramiko closes the channels a moment before it marks the transport dead)."""
        status = int(channel.exit_status)
        if status != -1:
            return status
        settle = time.monotonic() + _DROP_SETTLE_S
        while self._active() and time.monotonic() < settle:
            time.sleep(0.01)
        if not self._active():
            self.close()
            raise UnreachableError(self.where, "the connection dropped while the command ran")
        return status

    def _kill(self, pgid: int | None) -> None:
        """Kill the command's group on the machine over a second channel (best effort: if the
        connection is gone too, there is nothing more to do from here)."""
        if pgid is None or self._client is None or not self._active():
            return
        try:
            channel = self._client.get_transport().open_session(timeout=self._connect_timeout_s)
            with channel:
                channel.exec_command(kill_group(str(pgid), KILL_GRACE_S))
                done_by = time.monotonic() + KILL_GRACE_S + self._connect_timeout_s
                while not channel.exit_status_ready() and time.monotonic() < done_by:
                    time.sleep(0.05)
        except (OSError, EOFError, paramiko.SSHException):
            self.close()

    @contextmanager
    def _sftp(self, doing: str) -> Iterator[Any]:
        client = self._connected()
        try:
            with client.open_sftp() as sftp:
                yield sftp
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._fail(exc, doing)

    def _fail(self, exc: BaseException, doing: str) -> NoReturn:
        """Raise the runner error for ``exc``: unreachable if the connection is gone."""
        if not self._active():
            self.close()
            raise UnreachableError(self.where, f"{doing}: the connection dropped") from exc
        raise RunnerError(self.where, f"{doing}: {_describe(exc)}") from exc


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # paramiko is untyped
    """Hands every server key to the runner's check, which raises HostKeyError to refuse it."""

    def __init__(self, check: Callable[[str], None]) -> None:
        self._check = check

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        self._check(f"{key.get_name()} {key.get_base64()}")


class _GroupHeader:
    """Finds the group id line the wrapper prints on stdout; passes everything else on (a
    login shell's profile may print before it)."""

    def __init__(self, stdout: StreamCapture) -> None:
        self._stdout = stdout
        self._head = b""
        self.pgid: int | None = None

    def feed(self, chunk: bytes) -> None:
        if self.pgid is not None:
            self._stdout.feed(chunk)
            return
        self._head += chunk
        while self.pgid is None and b"\n" in self._head:
            line, _, self._head = self._head.partition(b"\n")
            if line.startswith(_GROUP_MARK) and line[len(_GROUP_MARK) :].isdigit():
                self.pgid = int(line[len(_GROUP_MARK) :])
            else:
                self._stdout.feed(line + b"\n")
        if self.pgid is not None:
            self._stdout.feed(self._head)
            self._head = b""

    def finish(self) -> None:
        self._stdout.feed(self._head)
        self._stdout.finish()


def _pump(channel: Any, stdout: _GroupHeader, stderr: StreamCapture, deadline: float) -> bool:
    """Drain both streams while the command runs (paramiko stalls a command whose output is
    not read) until the channel closes: True, or the deadline passes: False. The deadline is
    checked between chunks too, so endless output cannot outrun it."""
    while True:
        read = False
        if channel.recv_ready():
            stdout.feed(channel.recv(_CHUNK))
            read = True
        if channel.recv_stderr_ready():
            stderr.feed(channel.recv_stderr(_CHUNK))
            read = True
        if not read and channel.closed:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if not read:
            select.select([channel], [], [], min(left, 1.0))


def _wrapped(command: str) -> str:
    """The command as sent: in a session of its own that first prints its group id."""
    return (
        f"exec setsid -w sh -c {shlex.quote(_PRINT_GROUP_THEN_RUN)} cherrypick"
        f" {shlex.quote(command)}"
    )


def _other_host_key_algorithms(known: str | None) -> dict[str, list[str]]:
    """Paramiko's ``disabled_algorithms``: every host key algorithm not of the known key's type."""
    allowed = _HOST_KEY_ALGORITHMS.get(known.split()[0]) if known else None
    if allowed is None:
        return {}
    others = [name for names in _HOST_KEY_ALGORITHMS.values() for name in names]
    return {"keys": [name for name in others if name not in allowed]}


def _describe_key(line: str) -> str:
    return f"{line.split()[0]} {fingerprint(line)}"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
