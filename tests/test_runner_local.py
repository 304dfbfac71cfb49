"""LocalRunner: real bash processes, their output streamed and kept, their groups killed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sshd import live_pids_in_group

from cherrypick.errors import CommandTimeout, RunnerError
from cherrypick.runners import LocalRunner
from cherrypick.runners._output import STDERR_PREFIX
from cherrypick.runners.base import TAIL_CHARS


class _FlagOnLine(io.StringIO):
    """A log that creates ``flag`` when it receives ``line``: a command waiting for the flag
    finishes only if its output reaches the log while it runs."""

    def __init__(self, line: str, flag: Path) -> None:
        super().__init__()
        self._line = line
        self._flag = flag

    def write(self, text: str) -> int:
        if self._line in text.splitlines():
            self._flag.touch()
        return super().write(text)


def test_lines_reach_the_log_while_the_command_runs(tmp_path: Path) -> None:
    flag = tmp_path / "seen"
    log = _FlagOnLine("first", flag)
    command = f"echo first; while [ ! -e {flag} ]; do sleep 0.02; done; echo second"
    result = LocalRunner().run(command, timeout_s=10, log=log)
    assert result.ok
    assert log.getvalue() == "first\nsecond\n"


def test_log_keeps_each_streams_order_and_marks_stderr() -> None:
    log = io.StringIO()
    command = "for i in 1 2 3 4 5; do echo out $i; echo err $i >&2; done; printf 'no newline'"
    result = LocalRunner().run(command, timeout_s=10, log=log)
    lines = log.getvalue().splitlines()
    assert [x for x in lines if x.startswith("out")] == [f"out {i}" for i in range(1, 6)]
    errors = [f"{STDERR_PREFIX}err {i}" for i in range(1, 6)]
    assert [x for x in lines if x.startswith(STDERR_PREFIX)] == errors
    assert lines.count("no newline") == 1
    assert result.stdout.endswith("out 5\nno newline")
    assert result.stderr == "".join(f"err {i}\n" for i in range(1, 6))


def test_a_failing_exit_status_is_a_result_and_tails_are_bounded() -> None:
    command = "head -c 20000 /dev/zero | tr '\\0' a; echo; echo the-end; echo oops >&2; exit 7"
    result = LocalRunner().run(command, timeout_s=10)
    assert result.returncode == 7
    assert not result.ok
    assert len(result.stdout) == TAIL_CHARS
    assert result.stdout.endswith("a\nthe-end\n")
    assert result.stderr == "oops\n"


def test_large_output_on_both_streams_does_not_block() -> None:
    command = "yes o | head -c 2000000 & yes e | head -c 2000000 >&2; wait"
    log = io.StringIO()
    result = LocalRunner().run(command, timeout_s=20, log=log)
    assert result.ok
    assert log.getvalue().count("\n") == 2_000_000  # 1M lines on each stream


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pgid_file = tmp_path / "pgid"
    command = f"echo $$ > {pgid_file}; sleep 30 & sleep 30"
    with pytest.raises(CommandTimeout, match="its process group was killed"):
        LocalRunner().run(command, timeout_s=0.5)
    pgid = int(pgid_file.read_text())
    assert live_pids_in_group(pgid) == []


def test_a_group_that_ignores_term_is_killed(tmp_path: Path) -> None:
    pgid_file = tmp_path / "pgid"
    command = f"echo $$ > {pgid_file}; trap '' TERM; sleep 30 & wait"
    with pytest.raises(CommandTimeout):
        LocalRunner().run(command, timeout_s=0.3)
    assert live_pids_in_group(int(pgid_file.read_text())) == []


def test_put_and_get_copy_files_creating_folders(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 10)
    runner = LocalRunner()
    remote = tmp_path / "remote" / "deep" / "copy.bin"
    runner.put(source, str(remote))
    back = tmp_path / "back" / "again.bin"
    runner.get(str(remote), back)
    assert back.read_bytes() == source.read_bytes()


def test_getting_a_missing_file_is_a_runner_error(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="cannot copy"):
        LocalRunner().get(str(tmp_path / "missing"), tmp_path / "here")
