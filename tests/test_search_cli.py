"""Running the same search command twice: a finished search is shown again, an unfinished one is
pointed to ``--resume``, and another search in the default store goes to the next free file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from cherrypick.cli import main
from cherrypick.store import TrialStore

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "examples" / "alexnet-10class.yaml"
DEFAULT_STORE = "alexnet-10class.sqlite"  # the example's 'store'


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def search(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["search", str(EXAMPLE), "--dry-run", "--quiet", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def updated_at(store: str) -> float:
    with sqlite3.connect(store) as conn:
        value = float(conn.execute("SELECT updated_at FROM search").fetchone()[0])
    conn.close()
    return value


def test_a_finished_search_shows_its_result_again(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, first, _ = search(capsys)
    assert code == 0 and first.startswith("recommended")
    before = updated_at(DEFAULT_STORE)
    code, again, err = search(capsys)
    assert code == 0
    assert again == first  # the same summary, from the stored result
    assert err.splitlines() == [
        f"{DEFAULT_STORE}: this search already finished; its result follows (delete the file or"
        " pass --store to run it again)"
    ]
    assert updated_at(DEFAULT_STORE) == before  # nothing ran, nothing was written
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == [DEFAULT_STORE]
    code, as_json, _ = search(capsys, "--json")
    assert code == 0 and '"trials_used"' in as_json


def test_an_unfinished_search_is_pointed_to_resume(capsys: pytest.CaptureFixture[str]) -> None:
    assert search(capsys)[0] == 0
    with sqlite3.connect(DEFAULT_STORE) as conn:
        conn.execute("UPDATE search SET status = 'interrupted'")
    conn.close()
    code, out, err = search(capsys)
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.endswith(f"continue it with --resume {DEFAULT_STORE}")
    with TrialStore(DEFAULT_STORE, create=False) as stored:
        assert stored.status() == "interrupted"


def test_another_search_goes_to_the_next_free_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert search(capsys)[0] == 0
    code, out, err = search(capsys, "--seed", "1")
    assert code == 0 and out.startswith("recommended")
    assert err.splitlines() == ["store: alexnet-10class-2.sqlite"]
    code, _, err = search(capsys, "--seed", "2")
    assert code == 0 and err.splitlines() == ["store: alexnet-10class-3.sqlite"]
    seeds = {}
    for path in sorted(tmp_path.glob("*.sqlite")):
        with TrialStore(path, create=False) as stored:
            seeds[path.name] = (stored.seed(), stored.status())
    assert seeds == {
        DEFAULT_STORE: (0, "finished"),
        "alexnet-10class-2.sqlite": (1, "finished"),
        "alexnet-10class-3.sqlite": (2, "finished"),
    }
    code, _, err = search(capsys, "--seed", "1")  # found again in its numbered store
    assert code == 0 and err.startswith("alexnet-10class-2.sqlite: this search already finished")


def test_an_explicit_store_with_another_search_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert search(capsys, "--store", "mine.sqlite")[0] == 0
    code, out, err = search(capsys, "--store", "mine.sqlite", "--seed", "1")
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert "mine.sqlite already holds another search" in line
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == ["mine.sqlite"]


def test_the_result_says_how_sure_it_is_and_why_it_is_not_the_cheapest_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # As CherryPick searches, trials free: this seed's search ends on a run the model doubts.
    spec = yaml.safe_load(EXAMPLE.with_name("resnet50-imagenet.yaml").read_text())
    spec["stop"]["cost_aware"] = False
    resnet = Path("resnet.yaml")
    resnet.write_text(yaml.safe_dump(spec))
    assert main(["search", str(resnet), "--dry-run", "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["within"] == 0.10 and 0.0 <= result["confidence"] <= 1.0
    rec, preference = result["recommendation"], result["preference"]
    # This search's model prefers another run than its cheapest one, and says why.
    assert preference is not None
    assert preference["measured"] < preference["recommendation_measured"] == rec["cost_usd"]
    assert preference["recommendation_believed"] < preference["believed"]
    assert f"not trial {preference['measured_best']}, which measured" in result["why"]
    assert main(["search", str(resnet), "--dry-run", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert f"confidence: P(within 10%) = {result['confidence']:.0%}" in text
    assert result["why"] in text
