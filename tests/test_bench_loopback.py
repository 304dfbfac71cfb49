"""``cherrypick bench loopback``'s overhead part over a real loopback sshd: what it prints and
writes, and that the server and its folder are gone afterwards, also after Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from cherrypick.bench.loopback import PHASES, format_loopback, run_loopback
from cherrypick.cli import main


@pytest.fixture(autouse=True)
def own_wheel_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (a zombie's is empty)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line:
            found.append(line)
    return found


def test_overhead_trials_are_printed_and_written_with_their_phases(tmp_path: Path) -> None:
    result = run_loopback(2, search=False, directory=tmp_path)

    assert list(tmp_path.iterdir()) == []
    assert processes_mentioning(str(tmp_path)) == []
    data = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert data["search"] is None
    overhead = data["overhead"]
    assert [t["status"] for t in [overhead["warmup"], *overhead["trials"]]] == ["ok"] * 3
    assert len(overhead["trials"]) == 2
    for trial in overhead["trials"]:
        assert set(trial["seconds"]) == set(PHASES)
        assert all(s >= 0 for s in trial["seconds"].values())
        assert 0 < sum(trial["seconds"].values()) <= trial["total_s"]
        assert trial["seconds"]["setup"] > 0 and trial["seconds"]["run"] > 0
    totals = [t["total_s"] for t in overhead["trials"]]
    assert overhead["max_s"] == max(totals) and min(totals) <= overhead["median_s"] <= max(totals)

    lines = format_loopback(result).splitlines()
    assert lines[0].startswith("overhead: 2 trials of a no-op workload")
    assert lines[1].split() == ["trial", "configuration", "status", *PHASES, "total"]
    for trial, line in zip(overhead["trials"], lines[2:4], strict=True):
        words = line.split()
        assert words[0] == str(trial["trial_id"]) and "ok" in words
        assert float(words[-1]) == pytest.approx(trial["total_s"], abs=0.005)
    assert lines[4].startswith(f"overhead per trial: median {overhead['median_s']:.2f} s,")
    assert len(lines) == 5


def test_ctrl_c_stops_the_server_and_removes_its_folder(tmp_path: Path) -> None:
    def interrupt(done: int, total: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C, in the main thread, after a trial

    with pytest.raises(KeyboardInterrupt):
        run_loopback(2, search=False, directory=tmp_path, progress=interrupt)
    assert list(tmp_path.iterdir()) == []
    assert processes_mentioning(str(tmp_path)) == []


def test_a_bad_trial_count_fails_before_any_server_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "loopback", "--trials", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == "cherrypick bench: error: --trials must be between 1 and 254, got 0"
    assert main(["bench", "loopback", "--json", str(tmp_path)]) == 2
    assert f"--json {tmp_path} is a folder" in capsys.readouterr().err
