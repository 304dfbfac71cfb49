"""RemoteJob: detached jobs started, polled, killed and cleaned up, over SSH and locally.

The contract tests run over both runners; the fault tests (sshd restarted mid-job) need SSH.
Processes are checked in /proc (sshd runs on this machine): a job is gone when no process that
is not a zombie remains in its group.
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sshd import Sshd, live_pids_in_group

from cherrypick.errors import UnreachableError
from cherrypick.runners import LocalRunner, RemoteJob, Runner, kill_all_in
from cherrypick.runners.job import KILLED, LOST

Connect = Callable[[], Runner]


@pytest.fixture(params=["ssh", "local"])
def connect(request: pytest.FixtureRequest) -> Connect:
    """How a job reaches its machine: a fresh runner per call, as the search does."""
    if request.param == "local":
        return LocalRunner
    server: Sshd = request.getfixturevalue("sshd")
    return lambda: server.runner()


def _job(connect: Connect, tmp_path: Path, name: str = "job") -> RemoteJob:
    return RemoteJob(connect, str(tmp_path / "work"), name)


def _pgid(job: RemoteJob) -> int:
    return int(Path(job.workdir, f"{job.name}.pid").read_text())


def _finish(job: RemoteJob, limit_s: float = 10.0) -> int:
    deadline = time.monotonic() + limit_s
    while (code := job.poll()) is None:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.1)
    return code


def _gone(pgid: int, limit_s: float = 3.0) -> bool:
    """Whether group ``pgid`` has no live process (within ``limit_s``: a kill takes a moment)."""
    deadline = time.monotonic() + limit_s
    while live_pids_in_group(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not live_pids_in_group(pgid)


def test_a_job_runs_to_its_exit_code_with_its_output(connect: Connect, tmp_path: Path) -> None:
    job = _job(connect, tmp_path)
    job.start('echo to-out; echo to-err >&2; echo "$GREETING"; exit 3', env={"GREETING": "hi"})
    assert _finish(job) == 3
    tail = job.output_tail(1000)
    assert tail == "to-out\nhi\n--- stderr ---\nto-err\n"
    assert not job.alive()
    assert job.killed_by() is None


def test_output_tail_is_longer_than_a_command_result_keeps(
    connect: Connect, tmp_path: Path
) -> None:
    job = _job(connect, tmp_path)
    job.start("seq 1 20000")
    assert _finish(job) == 0
    tail = job.output_tail(10_000)
    assert len(tail) == 10_000 and tail.endswith("19999\n20000\n")


def test_a_job_runs_in_its_workdir_and_its_files_can_be_fetched(
    connect: Connect, tmp_path: Path
) -> None:
    job = _job(connect, tmp_path)
    job.start("pwd > where.txt")
    assert _finish(job) == 0
    local = tmp_path / "fetched" / "where.txt"
    job.fetch("where.txt", local)
    assert local.read_text().strip() == job.workdir


def test_each_call_uses_a_fresh_runner_and_closes_it(tmp_path: Path) -> None:
    opened: list[_CountingRunner] = []

    def connect() -> Runner:
        opened.append(_CountingRunner())
        return opened[-1]

    job = _job(connect, tmp_path)
    job.start("true")
    _finish(job)
    job.poll()
    assert len(opened) >= 3
    assert all(runner.closed == 1 for runner in opened)


def test_kill_kills_the_whole_group_and_is_idempotent(connect: Connect, tmp_path: Path) -> None:
    job = _job(connect, tmp_path)
    job.start("sleep 30 & trap '' TERM; sleep 30", watchdog_s=60)
    pgid = _pgid(job)
    assert job.alive() and job.poll() is None
    job.kill(grace_s=0.5)
    assert _gone(pgid)
    assert job.poll() == KILLED and job.killed_by() == "killed"
    watchdog = int(Path(job.workdir, "job.watchdog.pid").read_text())
    assert _gone(watchdog)
    job.kill()


def test_the_watchdog_kills_a_job_past_its_limit(connect: Connect, tmp_path: Path) -> None:
    job = _job(connect, tmp_path)
    job.start("sleep 30", watchdog_s=1)
    pgid = _pgid(job)
    assert _finish(job, limit_s=8) == KILLED
    assert job.killed_by() == "watchdog"
    assert _gone(pgid)


def test_the_watchdog_leaves_when_the_job_ends(connect: Connect, tmp_path: Path) -> None:
    job = _job(connect, tmp_path)
    job.start("sleep 0.2", watchdog_s=60)
    assert _finish(job) == 0
    watchdog = int(Path(job.workdir, "job.watchdog.pid").read_text())
    assert _gone(watchdog, limit_s=4)
    assert job.killed_by() is None


def test_a_job_killed_from_outside_is_lost(connect: Connect, tmp_path: Path) -> None:
    job = _job(connect, tmp_path)
    job.start("sleep 30")
    pgid = _pgid(job)
    os.killpg(pgid, signal.SIGKILL)
    assert _gone(pgid)
    assert job.poll() == LOST
    assert not job.alive()


def test_kill_all_in_leaves_no_process_and_no_folder(connect: Connect, tmp_path: Path) -> None:
    workdir = str(tmp_path / "trial dir")
    jobs = [RemoteJob(connect, workdir, name) for name in ("rank0", "rank1")]
    jobs[0].start("sleep 30", watchdog_s=60)
    jobs[1].start("sleep 30 & sleep 30")
    groups = [_pgid(job) for job in jobs] + [int(Path(workdir, "rank0.watchdog.pid").read_text())]
    with connect() as runner:
        kill_all_in(runner, workdir, grace_s=0.5)
    assert all(_gone(pgid) for pgid in groups)
    assert not Path(workdir).exists()


def test_hostile_values_never_run(connect: Connect, tmp_path: Path) -> None:
    pwned = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    injected = f"x; touch {pwned}"
    workdir = tmp_path / "work dir; touch {pwned} 'q\" $(touch {pwned})"
    job = RemoteJob(connect, str(workdir), "job")
    job.start(f"echo {shlex.quote(injected)}", env={"VALUE": f"$(touch {pwned}) `touch {pwned}`"})
    assert _finish(job) == 0
    job.start('echo "$VALUE"', env={"VALUE": f"$(touch {pwned})"})
    assert _finish(job) == 0
    assert job.output_tail(1000) == f"$(touch {pwned})\n"
    assert (workdir / "job.out").exists()
    assert not pwned.exists()


@pytest.mark.parametrize(
    "make",
    [
        lambda: RemoteJob(LocalRunner, "/tmp/x", "a;b"),
        lambda: RemoteJob(LocalRunner, "/tmp/x", "../up"),
        lambda: RemoteJob(LocalRunner, "/tmp/x").start("true", env={"A;B": "1"}),
    ],
    ids=["name", "path-name", "env-name"],
)
def test_names_that_are_not_names_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_a_job_survives_sshd_restarting_and_poll_reattaches(sshd: Sshd, tmp_path: Path) -> None:
    job = _job(lambda: sshd.runner(connect_limit_s=10), tmp_path)
    job.start("for i in $(seq 1 15); do echo tick $i; sleep 0.1; done")
    pgid = _pgid(job)
    sshd.stop()
    assert live_pids_in_group(pgid), "the job died with sshd"
    polled: list[int | None] = []
    poller = threading.Thread(target=lambda: polled.append(_finish(job)))
    poller.start()  # polls while sshd is down: it must wait for it, not fail
    time.sleep(0.5)
    sshd.start()
    poller.join(15)
    assert polled == [0]
    assert job.output_tail(1000).splitlines()[-1] == "tick 15"


def test_poll_gives_up_on_a_machine_that_stays_away(sshd: Sshd, tmp_path: Path) -> None:
    job = _job(lambda: sshd.runner(connect_limit_s=0.2), tmp_path)
    job.start("sleep 5")
    sshd.stop()
    try:
        with pytest.raises(UnreachableError):
            job.poll()
    finally:
        os.killpg(_pgid(job), signal.SIGKILL)


class _CountingRunner(LocalRunner):
    """A local runner that counts how often it was closed."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
