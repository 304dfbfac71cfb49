"""SSHRunner and SearchKey against a real sshd on loopback: commands, files, keys and faults."""

from __future__ import annotations

import io
import logging
import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cherrypick.providers.base import Instance
from sshd import Sshd, free_port, keygen, live_pids_in_group

from cherrypick.errors import CommandTimeout, HostKeyError, RunnerError, UnreachableError
from cherrypick.runners import LocalRunner, SearchKey, SSHRunner, runner_for
from cherrypick.runners._output import STDERR_PREFIX
from cherrypick.runners.keys import fingerprint


def _private_body(key: Path) -> list[str]:
    """The base64 lines of a private key file: what must never show anywhere."""
    return [line for line in key.read_text().splitlines() if line and "PRIVATE KEY" not in line]


def _wait_for(path: Path, limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_run_put_and_get(sshd: Sshd, tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(300_000))
    remote = tmp_path / "remote dir" / "deep" / "data.bin"
    back = tmp_path / "back" / "data.bin"
    with sshd.runner() as runner:
        result = runner.run("echo hello; echo warn >&2", timeout_s=10)
        runner.put(source, str(remote))
        listed = runner.run(f"wc -c < '{remote}'", timeout_s=10)
        runner.get(str(remote), back)
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "warn\n")
    assert listed.stdout.strip() == "300000"
    assert back.read_bytes() == source.read_bytes()


def test_getting_a_missing_file_is_a_runner_error_and_leaves_nothing(
    sshd: Sshd, tmp_path: Path
) -> None:
    with sshd.runner() as runner, pytest.raises(RunnerError, match="cannot copy") as raised:
        runner.get(str(tmp_path / "missing"), tmp_path / "here")
    assert not isinstance(raised.value, UnreachableError)
    assert list(tmp_path.iterdir()) == []  # no empty or partial file left


def test_a_failing_exit_status_is_a_result(sshd: Sshd) -> None:
    with sshd.runner() as runner:
        result = runner.run("echo partial; echo broken >&2; exit 42", timeout_s=10)
    assert (result.returncode, result.stdout, result.stderr) == (42, "partial\n", "broken\n")


def test_large_output_on_both_streams_does_not_deadlock(sshd: Sshd) -> None:
    log = io.StringIO()
    command = "yes out | head -n 500000 & yes err | head -n 500000 >&2; wait; echo done"
    with sshd.runner() as runner:
        result = runner.run(command, timeout_s=30, log=log)
    lines = log.getvalue().splitlines()
    assert result.ok and result.stdout.endswith("out\ndone\n")
    assert lines.count("out") == 500_000  # 2 MB on each stream
    assert lines.count(f"{STDERR_PREFIX}err") == 500_000


def test_timeout_kills_the_remote_process_group(sshd: Sshd, tmp_path: Path) -> None:
    pgid_file = tmp_path / "pgid"
    command = f"echo $$ > {pgid_file}; sleep 30 & sleep 30"
    with sshd.runner() as runner:
        with pytest.raises(CommandTimeout, match="process group was killed"):
            runner.run(command, timeout_s=1)
        assert runner.run("echo still usable", timeout_s=10).ok
    pgid = int(pgid_file.read_text())
    assert live_pids_in_group(pgid) == []


def test_endless_output_does_not_outrun_the_timeout(sshd: Sshd) -> None:
    started = time.monotonic()
    with sshd.runner() as runner, pytest.raises(CommandTimeout):
        runner.run("yes spam", timeout_s=1)
    assert time.monotonic() - started < 10


def test_a_changed_host_key_is_refused(sshd: Sshd) -> None:
    known = sshd.host_key_line
    with sshd.runner() as runner:
        assert runner.run("true", timeout_s=10).ok
        sshd.rotate_host_key()
        with pytest.raises(HostKeyError) as raised:
            runner.run("true", timeout_s=10)
    message = str(raised.value)
    assert "host key changed" in message and "refusing to connect" in message
    assert fingerprint(known) in message and fingerprint(sshd.host_key_line) in message
    assert not any(line in message for line in _private_body(sshd.client_key))


def test_trust_on_first_use_records_the_key_once_and_then_enforces_it(sshd: Sshd) -> None:
    seen: list[str] = []
    runner = sshd.runner(host_key=None, on_new_host_key=seen.append)
    for _ in range(2):
        assert runner.run("true", timeout_s=10).ok
        runner.close()  # the second run reconnects, and checks the recorded key
    assert seen == [sshd.host_key_line]
    assert runner.host_key == sshd.host_key_line
    sshd.rotate_host_key()
    with pytest.raises(HostKeyError, match="host key changed"):
        runner.run("true", timeout_s=10)
    assert len(seen) == 1


def test_no_known_key_and_no_trust_on_first_use_is_refused(sshd: Sshd) -> None:
    with pytest.raises(HostKeyError, match="refusing to connect"):
        sshd.runner(host_key=None).run("true", timeout_s=10)


def test_an_unreachable_port_gives_up_after_the_connect_limit() -> None:
    runner = SSHRunner(
        "127.0.0.1", free_port(), "nobody", None, "ssh-ed25519 AAAA", connect_limit_s=2
    )
    started = time.monotonic()
    with pytest.raises(UnreachableError, match=r"no SSH connection after .* last error") as raised:
        runner.run("true", timeout_s=5)
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 6.0
    assert "attempts" in str(raised.value)


def test_a_refused_key_fails_promptly_with_a_clear_message(sshd: Sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    keygen(stranger)
    runner = sshd.runner(key_file=str(stranger), connect_limit_s=60)
    started = time.monotonic()
    with pytest.raises(RunnerError, match="authentication as .* failed 2 times") as raised:
        runner.run("true", timeout_s=10)
    assert not isinstance(raised.value, UnreachableError)
    assert time.monotonic() - started < 10  # well before the 60 s connect limit
    assert not any(line in str(raised.value) for line in _private_body(stranger))


def test_a_missing_key_file_is_an_error_not_a_retry(sshd: Sshd, tmp_path: Path) -> None:
    runner = sshd.runner(key_file=str(tmp_path / "absent"), connect_limit_s=60)
    with pytest.raises(RunnerError, match="cannot use the private key file"):
        runner.run("true", timeout_s=10)


def test_a_dropped_connection_raises_and_the_next_call_reconnects(
    sshd: Sshd, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    runner = sshd.runner(connect_limit_s=10)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            runner.run(f"touch {started}; sleep 30", timeout_s=20)
        except BaseException as exc:  # noqa: BLE001  (handed to the test thread)
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    _wait_for(started)
    sshd.stop()
    thread.join(10)
    assert not thread.is_alive(), "run hung after the connection dropped"
    assert len(outcome) == 1 and isinstance(outcome[0], UnreachableError)
    sshd.start()
    assert runner.run("echo back", timeout_s=10).stdout == "back\n"
    runner.close()


def test_runner_for_picks_the_transport(sshd: Sshd) -> None:
    local = Instance("inventory", "h1", "here", extra={"transport": "local"})
    assert isinstance(
        runner_for(local, key_file=None, on_new_host_key=None, connect_limit_s=5), LocalRunner
    )
    remote = Instance(
        "inventory",
        "h2",
        "here",
        internal_ip=sshd.host,
        ssh_port=sshd.port,
        ssh_user=sshd.user,
        host_key=sshd.host_key_line,
    )
    with runner_for(
        remote, key_file=str(sshd.client_key), on_new_host_key=None, connect_limit_s=5
    ) as runner:
        assert runner.run("echo via-ssh", timeout_s=10).stdout == "via-ssh\n"


def test_search_key_is_private_loads_and_deletes(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    key = SearchKey.create(directory)
    assert stat.S_IMODE(key.private_path.stat().st_mode) == 0o600
    assert key.public_openssh.startswith("ssh-ed25519 AAAA") and key.public_openssh.endswith(
        " cherrypick"
    )
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(key.public_path)], capture_output=True, text=True, check=True
    )
    assert fingerprint(key.public_openssh) == listed.stdout.split()[1]
    with pytest.raises(FileExistsError):
        SearchKey.create(directory)
    assert SearchKey.load(directory) == key
    key.delete()
    assert not directory.exists()
    assert SearchKey.load(directory) is None


def test_search_key_logs_in_and_never_shows_in_the_log(
    sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = SearchKey.create(tmp_path / "keys")
    with (sshd.directory / "authorized_keys").open("a") as keys:
        keys.write(key.public_openssh + "\n")
    log_path = tmp_path / "run.log"
    caplog.set_level(logging.DEBUG)
    with log_path.open("w") as log, sshd.runner(key_file=str(key.private_path)) as runner:
        assert runner.run("echo logged-in", timeout_s=10, log=log).ok
    text = log_path.read_text() + caplog.text
    assert "logged-in" in text
    assert not any(line in text for line in _private_body(key.private_path))
    key.delete()
