"""A long job that runs detached on a machine and is polled over fresh connections.

A training run lasts longer than one SSH connection can be trusted to: the job is started with
``setsid nohup`` in a session of its own, so it survives the connection (and sshd restarting),
and each poll opens a new connection. Everything the job leaves lives in its work folder, under
its name: ``NAME.sh`` (the script), ``NAME.pid`` (its process group), ``NAME.out``/``NAME.err``,
``NAME.rc`` (its exit code, written atomically once it ends) and ``NAME.killed`` (who killed it).

A job may outlive its controller, too: with ``watchdog_s`` a second detached process kills the
job's group that long after the start, the backstop on a host that must not shut itself down.
"""

from __future__ import annotations

import io
import math
import posixpath
import re
import shlex
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from cherrypick.errors import RunnerError, UnreachableError
from cherrypick.runners._shell import ALIVE_FUNCTION, kill_group
from cherrypick.runners.base import Runner

__all__ = ["KILLED", "LOST", "RemoteJob", "kill_all_in"]

#: What ``poll`` returns for a job whose processes are gone but which recorded no exit code:
#: something outside killed it (an OOM kill, a reboot), and the caller should say it vanished.
LOST = -1
#: The exit code recorded for a job killed by ``kill`` or by its watchdog (128 + SIGKILL).
KILLED = 137
#: Connections a call tries before giving up on an unreachable machine (each one retries on its
#: own up to the runner's connect limit; this covers a connection that drops mid-call).
ATTEMPTS = 3
#: Time limit of each command a job sends (all of them are short).
_COMMAND_S = 60.0
#: How many 50 ms steps a start waits for the job to record its pid.
_PID_WAIT_STEPS = 200
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

T = TypeVar("T")


class RemoteJob:
    """The job ``name`` in the folder ``workdir`` of the machine that ``connect()`` reaches."""

    def __init__(self, connect: Callable[[], Runner], workdir: str, name: str = "job") -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"a job name is letters, digits, '_', '.' and '-', not {name!r}")
        self._connect = connect
        self.workdir = workdir
        self.name = name

    def __repr__(self) -> str:
        return f"RemoteJob({self.workdir!r}, {self.name!r})"

    def start(
        self, command: str, *, env: Mapping[str, str] | None = None, watchdog_s: float | None = None
    ) -> None:
        """Start ``command`` (bash) detached, with ``env`` exported; it runs in ``workdir``."""
        script = _job_script(command, env or {}, self.name)
        parts = [
            f"set -e; mkdir -p -- {self._dir}; cd -- {self._dir}",
            f"rm -f -- {self._f('.rc')} {self._f('.killed')} {self._f('.pid')}"
            f" {self._f('.watchdog.pid')}",
            f"printf '%s' {shlex.quote(script)} > {self._f('.sh')}",
            f"setsid nohup bash {self._f('.sh')} > {self._f('.out')} 2> {self._f('.err')}"
            " < /dev/null &",
            # The script writes its pid once it leads its group: until then, there is no group
            # to poll or kill, so the start waits for it.
            f'i=0; while [ ! -f {self._f(".pid")} ] && [ "$i" -lt {_PID_WAIT_STEPS} ]; do'
            " sleep 0.05; i=$((i + 1)); done",
            f"pgid=$(cat {self._f('.pid')})",
        ]
        if watchdog_s is not None:
            parts.append(self._watchdog_start(watchdog_s))
        # Not retried: a start whose connection dropped may have started the job already.
        self._checked("\n".join(parts), "cannot start", retry=False)

    def poll(self) -> int | None:
        """The job's exit code once it ended; None while it runs; ``LOST`` if it vanished."""
        rc = self._f(".rc")
        report_rc = f"if [ -f {rc} ]; then echo rc $(cat {rc}); exit 0; fi"
        state = self._checked(
            f"cd -- {self._dir} 2>/dev/null || {{ echo lost; exit 0; }}; {ALIVE_FUNCTION};"
            f" {report_rc}; if {self._alive_test()}; then echo running; exit 0; fi;"
            # It may have ended between the two tests: look for its exit code once more; a
            # marker without one is a kill in progress.
            f" {report_rc}; if [ -f {self._f('.killed')} ]; then echo rc {KILLED}; exit 0; fi;"
            " echo lost",
            "cannot poll",
        )
        answer = state.split()
        if answer == ["running"]:
            return None
        if answer == ["lost"]:
            return LOST
        if len(answer) == 2 and answer[0] == "rc" and answer[1].lstrip("-").isdigit():
            return int(answer[1])
        raise RunnerError(repr(self), f"cannot tell the job's state from {state!r}")

    def alive(self) -> bool:
        """Whether a process of the job's group still runs."""
        answer = self._checked(
            f"cd -- {self._dir} 2>/dev/null || exit 0; {ALIVE_FUNCTION};"
            f" if {self._alive_test()}; then echo yes; fi",
            "cannot look at",
        )
        return answer == "yes"

    def kill(self, grace_s: float = 2.0) -> None:
        """Kill the job's group (TERM, then KILL after ``grace_s``) and its watchdog; recording
        ``KILLED`` unless it ended by itself. Harmless when it is gone already."""
        self._checked(
            f"cd -- {self._dir} 2>/dev/null || exit 0; {ALIVE_FUNCTION}; {self._kill_watchdog()};"
            f" [ -f {self._f('.pid')} ] || exit 0; pgid=$(cat {self._f('.pid')});"
            f' if cp_alive "$pgid"; then {self._kill_recorded("killed", "$pgid", grace_s)}; fi',
            "cannot kill",
            timeout_s=_COMMAND_S + grace_s,
        )

    def killed_by(self) -> str | None:
        """Who killed the job (``"killed"`` for ``kill``, ``"watchdog"``), or None."""
        marker = self._f(".killed")
        answer = self._checked(
            f"cd -- {self._dir} 2>/dev/null && cat {marker} 2>/dev/null; true", "cannot look at"
        )
        return answer or None

    def output_tail(self, n_bytes: int) -> str:
        """The last ``n_bytes`` of the job's stdout, then of its stderr (after a marker line)."""

        def tails(runner: Runner) -> str:
            out = _read_tail(runner, self._path(".out"), n_bytes)
            err = _read_tail(runner, self._path(".err"), n_bytes)
            return out if not err else f"{out}--- stderr ---\n{err}"

        return self._retrying(tails)

    def fetch(self, remote_path: str, local: Path) -> None:
        """Copy a file of the job (a relative ``remote_path`` is in ``workdir``) to ``local``."""
        remote = posixpath.join(self.workdir, remote_path)
        self._retrying(lambda runner: runner.get(remote, local))

    # -- shell pieces --------------------------------------------------------------------------

    @property
    def _dir(self) -> str:
        return shlex.quote(self.workdir)

    def _f(self, suffix: str) -> str:
        """One of the job's files, quoted, relative to the work folder."""
        return shlex.quote(self.name + suffix)

    def _path(self, suffix: str) -> str:
        return posixpath.join(self.workdir, self.name + suffix)

    def _alive_test(self) -> str:
        return f'[ -f {self._f(".pid")} ] && cp_alive "$(cat {self._f(".pid")})"'

    def _kill_recorded(self, by: str, pgid: str, grace_s: float) -> str:
        """Kill group ``pgid`` and record that ``by`` did, with the exit code ``KILLED`` (unless
        the job recorded its own). The marker comes first, so a poll in between is not LOST."""
        rc, tmp = self._f(".rc"), self._f(f".rc.{by}.tmp")
        return (
            f"if [ ! -e {rc} ]; then echo {by} > {self._f('.killed')}; fi;"
            f" {kill_group(pgid, grace_s)};"
            f" if [ ! -e {rc} ]; then echo {KILLED} > {tmp} && mv -f -- {tmp} {rc}; fi"
        )

    def _kill_watchdog(self) -> str:
        wpid = self._f(".watchdog.pid")
        return f'if [ -f {wpid} ]; then kill -KILL -- "-$(cat {wpid})" 2>/dev/null; fi; true'

    def _watchdog_start(self, watchdog_s: float) -> str:
        """Start the watchdog: it waits while the group lives, and kills it at ``watchdog_s``."""
        steps = max(1, math.ceil(watchdog_s))
        watch = (
            f'{ALIVE_FUNCTION}; i=0; while [ "$i" -lt {steps} ]; do'
            f' cp_alive "$1" || exit 0; sleep {watchdog_s / steps:.3f}; i=$((i + 1)); done;'
            f" {self._kill_recorded('watchdog', '$1', 2.0)}"
        )
        wpid = self._f(".watchdog.pid")
        return (
            f'setsid nohup bash -c {shlex.quote(watch)} cherrypick-watchdog "$pgid"'
            f" > /dev/null 2>&1 < /dev/null &"
            f' echo "$!" > {wpid}'
        )

    # -- running the pieces --------------------------------------------------------------------

    def _checked(
        self, script: str, doing: str, *, timeout_s: float = _COMMAND_S, retry: bool = True
    ) -> str:
        """Run ``script`` on the machine; the last line of its stdout (a login profile may
        print before it), or RunnerError if it failed."""

        def run(runner: Runner) -> str:
            done = runner.run(script, timeout_s=timeout_s)
            if not done.ok:
                raise RunnerError(
                    runner.where,
                    f"{doing} job {self.name} in {self.workdir} (exit {done.returncode}):"
                    f" {done.stderr.strip()[-500:]}",
                )
            lines = done.stdout.strip().splitlines()
            return lines[-1].strip() if lines else ""

        if not retry:
            with self._connect() as runner:
                return run(runner)
        return self._retrying(run)

    def _retrying(self, action: Callable[[Runner], T]) -> T:
        """Do ``action`` over a fresh connection; again over another if the machine dropped it."""
        for attempt in range(1, ATTEMPTS):
            try:
                with self._connect() as runner:
                    return action(runner)
            except UnreachableError:
                time.sleep(attempt)
        with self._connect() as runner:
            return action(runner)


def kill_all_in(runner: Runner, workdir: str, grace_s: float = 2.0) -> None:
    """Kill the group of every job recorded in ``workdir`` (watchdogs first), then remove it."""
    folder = shlex.quote(workdir)
    script = (
        f"if [ -d {folder} ]; then ( cd -- {folder} && {ALIVE_FUNCTION};"
        ' for f in *.watchdog.pid *.pid; do [ -f "$f" ] || continue; pgid=$(cat -- "$f");'
        " case $pgid in ''|*[!0-9]*) continue;; esac;"
        f" {kill_group('$pgid', grace_s)}; done ); fi; rm -rf -- {folder}"
    )
    done = runner.run(script, timeout_s=_COMMAND_S + grace_s * 10)
    if not done.ok:
        raise RunnerError(runner.where, f"cannot clean {workdir}: {done.stderr.strip()[-500:]}")


def _job_script(command: str, env: Mapping[str, str], name: str) -> str:
    """The job's script: record its pid (its group: ``setsid`` started it), export ``env``, run
    ``command``, record its exit code; each file written atomically."""
    lines = ["#!/bin/bash"]
    for key, value in env.items():
        if not _ENV_NAME.fullmatch(key):
            raise ValueError(f"not an environment variable name: {key!r}")
        lines.append(f"export {key}={shlex.quote(value)}")
    pid, pid_tmp = shlex.quote(name + ".pid"), shlex.quote(name + ".pid.tmp")
    rc, tmp = shlex.quote(name + ".rc"), shlex.quote(name + ".rc.tmp")
    lines += [
        f'echo "$$" > {pid_tmp} && mv -f -- {pid_tmp} {pid}',
        f"bash -c {shlex.quote(command)}",
        f'echo "$?" > {tmp} && mv -f -- {tmp} {rc}',
    ]
    return "\n".join(lines) + "\n"


def _read_tail(runner: Runner, path: str, n_bytes: int) -> str:
    """The last ``n_bytes`` of a file on the machine (its whole text: a result keeps less)."""
    text = io.StringIO()
    runner.run(
        f"tail -c {int(n_bytes)} -- {shlex.quote(path)} 2>/dev/null; true",
        log=text,
        timeout_s=_COMMAND_S,
    )
    return text.getvalue()
