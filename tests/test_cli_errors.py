"""Bad inputs reach the user as one line on stderr and an exit code, never as a traceback, and
are refused before any work starts. Every test runs the real command line."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cherrypick.cli import main
from cherrypick.store import TrialStore

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "configs" / "examples" / "alexnet-10class.yaml"
#: A few bytes of valid YAML, then one that is not UTF-8, on line 3.
NOT_UTF8 = b"workload:\n  name: cnn\n  params: {model: \xff}\n"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str, *named: str) -> str:
    """The single stderr line of a refused command; it names everything in ``named``."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    for name in named:
        assert name in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small finished dry-run search (two trials), made once; tests copy it."""
    folder = tmp_path_factory.mktemp("made")
    spec = folder / "tiny.yaml"
    text = EXAMPLE.read_text().replace("max_trials: 20", "max_trials: 2")
    # Two trials whatever they cost (the cost rule would stop this small job after one).
    spec.write_text(text.replace("min_trials: 8", "min_trials: 2\n  cost_aware: false"))
    store = folder / "tiny.sqlite"
    assert main(["search", str(spec), "--dry-run", "--store", str(store), "--quiet"]) == 0
    return store


@pytest.fixture
def store(finished_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "s.sqlite"
    shutil.copy(finished_store, copy)
    return copy


def corrupt(store: Path, sql: str) -> None:
    with sqlite3.connect(store) as conn:
        conn.execute(sql)
    conn.close()


# -- 1. files that are not UTF-8 --------------------------------------------------------------


def test_a_search_file_that_is_not_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(NOT_UTF8)
    code, _, err = cli(capsys, "search", bad, "--dry-run")
    assert code == 2
    one_line(err, "bad.yaml, line 3", "not UTF-8 text (byte 0xff at offset 40)")


def test_a_profile_config_that_is_not_utf8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(NOT_UTF8)
    code, out, err = cli(capsys, "profile", "--config", bad)
    assert code == 2
    assert out == ""
    one_line(err, "bad.yaml, line 3", "not UTF-8 text (byte 0xff")


def test_a_replay_table_that_is_not_utf8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"workload,runtime_s,price_per_hour,gpu\nw,10,1.5,\xe9\n")
    code, _, err = cli(capsys, "bench", "replay", "--table", bad, "--seeds", "1")
    assert code == 2
    one_line(err, "bad.csv, line 2", "not UTF-8 text (byte 0xe9")


# -- 2. corrupt JSON inside a store ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("UPDATE search SET result = '{\"trials_used\": 2'", "field 'search.result'"),
        ("UPDATE search SET spec = 'not json'", "field 'search.spec'"),
        ("UPDATE trials SET candidate = '{' WHERE trial_id = 1", "field 'trials.candidate'"),
    ],
)
def test_report_names_the_corrupt_column(
    capsys: pytest.CaptureFixture[str], store: Path, sql: str, named: str
) -> None:
    corrupt(store, sql)
    code, out, err = cli(capsys, "report", store, "--out", store.parent / "out")
    assert code == 2
    line = one_line(err, str(store), named, "corrupt JSON")
    assert ("trial 1" in line) == ("trials" in named)
    assert out == ""


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("UPDATE search SET spec = '[1, 2'", "field 'search.spec'"),
        ("UPDATE trials SET result = 'nan?' WHERE trial_id = 0", "field 'trials.result'"),
    ],
)
def test_resume_names_the_corrupt_column(
    capsys: pytest.CaptureFixture[str], store: Path, sql: str, named: str
) -> None:
    corrupt(store, sql)
    code, _, err = cli(capsys, "search", "--resume", store, "--quiet")
    assert code == 2
    one_line(err, str(store), named, "corrupt JSON")


# -- 3. a read-only command changes nothing ----------------------------------------------------


def test_report_of_an_empty_or_missing_file_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    code, out, err = cli(capsys, "report", empty)
    assert code == 2  # the file given is not a store: bad input
    one_line(err, str(empty), "not a cherrypick trial store")
    assert out == ""
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]
    code, _, err = cli(capsys, "report", tmp_path / "missing.sqlite")
    assert code == 2
    one_line(err, "no trial store at", "missing.sqlite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]


# -- 4. output paths are checked before the work -----------------------------------------------


def test_report_out_onto_an_existing_file(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    taken = store.parent / "taken"
    taken.write_text("mine\n")
    code, out, err = cli(capsys, "report", store, "--out", taken)
    assert code == 2
    one_line(err, "--out", str(taken), "not a folder")
    assert out == ""  # refused before the table was printed
    assert taken.read_text() == "mine\n"


def test_report_csv_into_a_missing_folder(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    out_dir = store.parent / "out"
    code, out, err = cli(
        capsys, "report", store, "--out", out_dir, "--csv", store.parent / "no/t.csv"
    )
    assert code == 2
    one_line(err, "--csv", "no/t.csv", "does not exist")
    assert out == ""
    assert not out_dir.exists() and not (store.parent / "no").exists()


@pytest.mark.parametrize(
    ("where", "why"), [("missing/result.json", "does not exist"), (".", "is a folder")]
)
def test_profile_output_is_checked_before_training(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    why: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["--model", "alexnet", "--batch-size", "2", "--image-size", "64", "--classes", "4"]
    code, out, err = cli(capsys, "profile", *args, "--iterations", "7", "--output", where)
    assert code == 2
    one_line(err, "--output", where, why)
    assert out == ""  # no layer table: nothing trained
    assert list(tmp_path.iterdir()) == []


# -- 5. SIGTERM is Ctrl-C -----------------------------------------------------------------------

SLOW_SEARCH = """
import sys, time
from cherrypick.cli import main
from cherrypick.workloads.base import TrialResult, Workload, workload_registry


class Slow(Workload):
    name = "slow"
    result_path = "/tmp/result.json"

    def setup_commands(self):
        return []

    def command(self, candidate, node_rank, master_addr, master_port):
        return "true"

    def parse_result(self, raw):
        return TrialResult("ok", 60.0)

    def estimate_runtime(self, candidate):
        time.sleep(0.2)
        return 600.0


workload_registry.register("slow", lambda params: Slow())
sys.exit(main(sys.argv[1:]))
"""

SLOW_SPEC = """
workload: {name: slow}
prior: none
budget: {max_trials: 200}
stop: {min_trials: 200}
store: slow.sqlite
"""


def test_sigterm_stops_a_search_like_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW_SEARCH)
    (tmp_path / "slow.yaml").write_text(SLOW_SPEC)
    child = subprocess.Popen(
        [sys.executable, "slow.py", "search", "slow.yaml", "--dry-run"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stderr is not None
        first = child.stderr.readline()
        assert first.startswith("trial "), first
        child.send_signal(signal.SIGTERM)
        out, rest = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130
    # Besides a line per trial event, a status line may come ("search  best ..."): not errors.
    lines = [ln for ln in rest.splitlines() if not ln.startswith(("trial ", "search  "))]
    assert "Traceback" not in rest
    assert len(lines) == 1 and "interrupted" in lines[0], rest
    assert out == ""
    with TrialStore(tmp_path / "slow.sqlite", create=False) as stored:
        assert stored.status() == "interrupted"
        assert stored.live_instances() == []
        assert len(stored.trials()) < 200


# -- 6, 7. flags are blamed as flags -----------------------------------------------------------


@pytest.mark.parametrize(("flag", "value"), [("--seed", "-1"), ("--parallel", "0")])
def test_a_bad_flag_value_names_the_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str, value: str
) -> None:
    code, _, err = cli(
        capsys, "search", EXAMPLE, "--dry-run", "--store", tmp_path / "s", flag, value
    )
    assert code == 2
    line = one_line(err, f"{flag} {value}: ")
    assert "field" not in line and EXAMPLE.name not in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("flag", "value"), [("--seed", "3"), ("--store", "other.sqlite"), ("--parallel", "2")]
)
def test_resume_refuses_what_the_stored_search_keeps(
    capsys: pytest.CaptureFixture[str], store: Path, flag: str, value: str
) -> None:
    with TrialStore(store, create=False) as before:
        state = before.status(), len(before.trials())
    code, _, err = cli(capsys, "search", "--resume", store, flag, value, "--quiet")
    assert code == 2
    one_line(err, flag, "--resume", "the stored search keeps its own")
    with TrialStore(store, create=False) as after:
        assert (after.status(), len(after.trials())) == state


# -- 8. usage errors ---------------------------------------------------------------------------


def test_an_unknown_flag_prints_the_subcommands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["search", "--bogus"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: cherrypick search ")
    assert err.splitlines()[-1] == "cherrypick search: error: unrecognized arguments: --bogus"


def test_an_unknown_flag_before_the_command_prints_the_top_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--bogus", "search"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.startswith("usage: cherrypick [-h] COMMAND")


# -- the subprocess: what a user runs ----------------------------------------------------------


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(NOT_UTF8)
    done = subprocess.run(
        [sys.executable, "-m", "cherrypick", "search", str(bad), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    one_line(done.stderr, "bad.yaml", "not UTF-8")


def test_a_reader_that_goes_away_is_no_traceback(store: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "cherrypick", "report", str(store), "--out", str(store.parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    child.stdout.close()  # as `| head` does once it has read enough
    _, err = child.communicate(timeout=60)
    assert err == ""
    assert child.returncode == 128 + signal.SIGPIPE
