"""A trial's commands on real machines: prepare each node, start the workload detached on every
node, poll it, fetch rank 0's result, and say how long each phase took.

The controller never holds a connection while the job runs: the job is started with ``setsid``
(``cherrypick.runners.job``) and polled over fresh connections, so a dropped connection or a
restarted ``sshd`` is re-attached, not a lost trial. A job past its limit has its whole process
group killed and is a ``timeout``; a workload that exits without a result is an ``error``
carrying the tail of its output.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import shlex
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cherrypick.errors import RunnerError, WorkloadError
from cherrypick.providers.base import Candidate, ClusterInfo, Instance
from cherrypick.runners.base import Runner
from cherrypick.trials import TrialStatus
from cherrypick.workloads.base import TrialResult, Workload

if TYPE_CHECKING:
    from cherrypick.runners.job import RemoteJob
    from cherrypick.runners.ship import Package

__all__ = ["Cancelled", "Execution", "ShellOutcome", "rendezvous_port"]

#: How long one set-up command may run (pip installing torch on a fresh VM takes minutes).
SETUP_LIMIT_S = 1800.0
#: How often a running job is polled: fast at first (short trials), then every few seconds.
POLL_FIRST_S = 0.25
POLL_MAX_S = 2.0
#: What the machine's own watchdog adds to the trial's limit before it kills the job itself.
WATCHDOG_MARGIN_S = 300.0
#: How much of a failed job's output a trial's message keeps.
MESSAGE_TAIL = 600
#: Rendezvous ports are drawn from [PORT_BASE, PORT_BASE + PORT_SPAN): below Linux's ephemeral
#: range (32768 up), where outgoing connections take their local ports.
PORT_BASE = 20000
PORT_SPAN = 12000
#: How many rendezvous ports a trial tries when the head node's is taken by another process.
PORT_ATTEMPTS = 3
#: How far the next port is from a taken one (a prime: the attempts do not cycle soon).
PORT_STEP = 7919
#: What a job's output says when its rendezvous port is taken (torch's TCPStore, Python's bind).
_PORT_TAKEN = ("EADDRINUSE", "address already in use")

Phase = Callable[[str, str], None]


class Cancelled(Exception):
    """The search was stopped (Ctrl-C, SIGTERM) while this trial ran: its jobs were killed."""


@dataclass
class ShellOutcome:
    """What the machines said, and the wall seconds of each phase (connect, set-up, run,
    collect)."""

    result: TrialResult
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Execution:
    """Runs ``workload`` on ``cluster``; ``connect(instance)`` gives a fresh runner to a node."""

    workload: Workload
    candidate: Candidate
    cluster: ClusterInfo
    connect: Callable[[Instance], Runner]
    package: Package | None
    log: TextIO
    timeout_s: float
    cancel: threading.Event
    phase: Phase
    master_port: int = 29500
    _ended: list[bool] = field(default_factory=list)
    _failed_rank: int = 0
    _codes: list[int | None] = field(default_factory=list)
    reached: Callable[[Instance], None] = lambda instance: None
    _jobs: list[RemoteJob] = field(default_factory=list)

    def run(self) -> ShellOutcome:
        outcome = ShellOutcome(TrialResult(TrialStatus.ERROR, None, message="not run"))
        clock = functools.partial(_timed, outcome.seconds)
        try:
            with clock("connect"):
                self.phase("booting", "connecting")
                runners = [self.connect(i) for i in self.cluster.instances]
            with clock("setup"):
                self.phase("setting up", "")
                try:
                    paths = self._prepare_all(runners)
                finally:  # a failed set-up too: its connections would stay open until exit
                    for runner in runners:
                        runner.close()
            with clock("run"):
                status = self._start_and_wait(paths)
                for _ in range(PORT_ATTEMPTS - 1):
                    if status == TrialStatus.TIMEOUT or not self._port_taken():
                        break
                    status = self._again_on_another_port(paths)
            with clock("collect"):
                self.phase("collecting", "")
                outcome.result = self._collect(status)
        finally:
            self._kill_jobs()
        return outcome

    # -- set-up -------------------------------------------------------------------------------

    def _prepare_all(self, runners: Sequence[Runner]) -> list[str]:
        """Prepare every node at once (a node's set-up does not depend on another's)."""
        nodes = list(zip(runners, self.cluster.instances, strict=True))
        if len(nodes) == 1:
            return [self._prepare(*nodes[0])]
        with ThreadPoolExecutor(len(nodes), thread_name_prefix="setup") as pool:
            return list(pool.map(lambda node: self._prepare(*node), nodes))

    def _prepare(self, runner: Runner, instance: Instance) -> str:
        """Make the trial's folder, install this package (once per machine and version) and run
        the workload's own set-up; return the PATH the job runs with."""
        workdir = _workdir(instance)
        self._check(runner, f"mkdir -p {shlex.quote(workdir)}", 60.0)
        self.reached(instance)
        path = "$PATH"
        if self.package is not None:
            path = self.package.install(runner, _python(instance), self.log)
        for command in self.workload.setup_commands():
            self._check(runner, f"export PATH={path}; cd {shlex.quote(workdir)} && {command}")
        return path

    def _check(self, runner: Runner, command: str, limit_s: float = SETUP_LIMIT_S) -> None:
        self._raise_if_cancelled()
        done = runner.run(command, timeout_s=limit_s, log=self.log)
        if not done.ok:
            tail = (done.stderr or done.stdout)[-MESSAGE_TAIL:].strip()
            raise WorkloadError(f"{runner.where}: set-up failed (exit {done.returncode}): {tail}")

    # -- the job ------------------------------------------------------------------------------

    def _start_and_wait(self, paths: Sequence[str]) -> TrialStatus:
        from cherrypick.runners.job import RemoteJob

        head = self.cluster.head
        # One machine's processes meet on loopback: its private address may not be routable from
        # itself (a NAT'd or mapped one), and nothing else needs to reach the port.
        master = head.internal_ip if len(self.cluster.instances) > 1 else "127.0.0.1"
        for instance, path in zip(self.cluster.instances, paths, strict=True):
            command = self.workload.command(
                self.candidate, instance.node_rank, master, self.master_port
            )
            job = RemoteJob(functools.partial(self.connect, instance), _workdir(instance), "job")
            self._jobs.append(job)
            workdir = shlex.quote(_workdir(instance))
            job.start(
                f"export PATH={path}; cd {workdir} && {command}",
                watchdog_s=self.timeout_s + WATCHDOG_MARGIN_S,
            )
        return self._wait()

    def _port_taken(self) -> bool:
        """Whether a job failed saying its rendezvous port was in use."""
        failed = [rank for rank, code in enumerate(self._codes) if code not in (None, 0)]
        if not failed:
            return False
        try:
            tail = self._jobs[failed[0]].output_tail(4000)
        except RunnerError:
            return False
        return any(sign.lower() in tail.lower() for sign in _PORT_TAKEN)

    def _again_on_another_port(self, paths: Sequence[str]) -> TrialStatus:
        """Kill every node's job and start them again, meeting on the next port."""
        self._fetch_logs()
        self._kill_jobs()
        self._jobs, self._ended, self._failed_rank = [], [], 0
        taken = self.master_port
        self.master_port = PORT_BASE + (taken - PORT_BASE + PORT_STEP) % PORT_SPAN
        self.log.write(f"rendezvous port {taken} is taken: starting again on {self.master_port}\n")
        self.phase("running", f"port {taken} taken, retrying on {self.master_port}")
        return self._start_and_wait(paths)

    def _wait(self) -> TrialStatus:
        started = time.monotonic()
        pause = POLL_FIRST_S
        while True:
            self._raise_if_cancelled()
            codes = self._codes = [job.poll() for job in self._jobs]
            self._ended = [c is not None for c in codes]
            if all(self._ended):
                return TrialStatus.OK
            failed = [rank for rank, c in enumerate(codes) if c is not None and c != 0]
            if failed:
                self._failed_rank = failed[0]
                return TrialStatus.ERROR  # one node failed: torchrun stops the others
            elapsed = time.monotonic() - started
            if elapsed > self.timeout_s:
                return TrialStatus.TIMEOUT
            self.phase("running", self._progress())
            self.cancel.wait(min(pause, max(self.timeout_s - elapsed, 0.01)))
            pause = min(pause * 2, POLL_MAX_S)

    def _progress(self) -> str:
        if type(self.workload).progress is Workload.progress:
            return ""  # the workload does not say: no connection spent on asking
        try:
            text = self.workload.progress(self._jobs[0].output_tail(2000))
        except RunnerError:
            return "reconnecting"
        return "" if text is None else str(text)

    def _collect(self, status: TrialStatus) -> TrialResult:
        if status == TrialStatus.TIMEOUT:
            self._kill_jobs()
            return TrialResult(
                TrialStatus.TIMEOUT,
                None,
                message=f"the trial ran past its {self.timeout_s:.0f} s limit; its processes"
                " were killed",
            )
        raw = self._fetch_result()
        if raw is None:
            return TrialResult(TrialStatus.ERROR, None, message=self._failure_message())
        self._fetch_logs()
        try:
            return self.workload.parse_result(raw)
        except Exception as exc:  # a workload's own parser: its bug is this trial's error
            message = f"the workload cannot parse its result file: {type(exc).__name__}: {exc}"
            return TrialResult(TrialStatus.ERROR, None, message=message[:MESSAGE_TAIL])

    def _fetch_result(self) -> bytes | None:
        head = self._jobs[0]
        remote = _result_path(self.workload, self.cluster.head)
        with tempfile.TemporaryDirectory(prefix="cherrypick-result-") as tmp:
            local = Path(tmp) / "result"
            try:
                head.fetch(remote, local)
            except (RunnerError, OSError):
                return None
            return local.read_bytes()

    def _failure_message(self) -> str:
        """Why the job ended without a result: the failing node's exit code and the end of its
        output."""
        from cherrypick.runners.job import LOST

        self._fetch_logs()
        job = self._jobs[self._failed_rank]
        code = job.poll()
        tail = job.output_tail(MESSAGE_TAIL).strip()
        node = f"node {self._failed_rank}: " if len(self._jobs) > 1 else ""
        if code == LOST:
            return (
                f"{node}the workload's processes vanished without an exit code (killed from"
                f" outside: out of memory, a reboot?) and wrote no result: {tail}"
            )
        return f"{node}the workload exited with {code} and wrote no result: {tail}"

    def _fetch_logs(self) -> None:
        for rank, job in enumerate(self._jobs):
            try:
                tail = job.output_tail(20000)
            except RunnerError as exc:
                tail = f"(cannot read: {exc})"
            self.log.write(f"--- node {rank} output ---\n{tail}\n")
        self.log.flush()

    def _kill_jobs(self) -> None:
        """Kill the jobs that have not ended (their process groups); ended ones cost nothing."""
        running = [j for j, ended in zip(self._jobs, self._ended, strict=False) if not ended]
        for job in running + self._jobs[len(self._ended) :]:
            try:
                job.kill()
            except RunnerError as exc:
                self.log.write(f"cannot kill {job}: {exc}\n")
        self._ended = [True] * len(self._jobs)

    def _raise_if_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("the search was stopped")


def rendezvous_port(search_tag: str, trial_id: int) -> int:
    """The first rendezvous port of a trial's head node, from the search and the trial, so that
    two searches (or two trials) sharing hosts rarely pick the same one."""
    digest = hashlib.sha256(f"{search_tag}/{trial_id}".encode()).digest()
    return PORT_BASE + int.from_bytes(digest[:4], "big") % PORT_SPAN


@contextlib.contextmanager
def _timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    """Adds the wall seconds of the block to ``seconds[name]`` (also when it fails)."""
    start = time.monotonic()
    try:
        yield
    finally:
        seconds[name] = time.monotonic() - start


def _workdir(instance: Instance) -> str:
    workdir = instance.extra.get("workdir")
    return str(workdir) if workdir else f"/tmp/cherrypick-{instance.instance_id}"


def _python(instance: Instance) -> str:
    return str(instance.extra.get("python") or "python3")


def _result_path(workload: Workload, instance: Instance) -> str:
    """The workload's result path; a relative one is inside the node's trial folder."""
    path = workload.result_path
    return path if path.startswith("/") else f"{_workdir(instance)}/{path}"
