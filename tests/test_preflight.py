"""A hopeless job is refused before its first trial: the performance model says that no candidate
fits it in GPU memory, or that none has the stop rule's ``min_chance`` of meeting the deadline.
The refusal exits 2, names the closest candidate and its prediction, launches nothing and leaves
no store; ``--force`` searches anyway, and a feasible search is not refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import cherrypick
from cherrypick.cli import main
from cherrypick.errors import HopelessJobError
from cherrypick.store import TrialStore

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "examples" / "alexnet-10class.yaml"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def example(tmp_path: Path, **params: object) -> Path:
    """The AlexNet example with ``params`` changed (``max_runtime_s`` in the objective) and a
    short budget, so that a forced search ends soon."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    if "max_runtime_s" in params:
        spec["objective"]["max_runtime_s"] = params.pop("max_runtime_s")
    spec["workload"]["params"].update(params)
    spec["budget"] = {"max_trials": 3}
    spec["stop"] = {"min_trials": 2}
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def refused(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    code = main(["search", str(path), "--dry-run", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == "" and "Traceback" not in err
    assert not (path.parent / "alexnet-10class.sqlite").exists()  # nothing began, nothing kept
    return err


def test_a_batch_no_gpu_holds_is_refused_naming_the_likeliest_candidate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = refused(capsys, example(tmp_path, batch_size=100_000_000))
    assert "no candidate fits this job in GPU memory" in err
    named = re.search(r"the likeliest to, (\S+) (\S+) (\S+) \((\d+)x (\S+)\) x (\d)", err)
    assert named is not None, err
    assert named.group(5) == "H200"  # the most memory per GPU in the catalog
    assert "--force" in err


def test_a_deadline_no_candidate_can_meet_is_refused_naming_the_fastest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = refused(capsys, example(tmp_path, max_runtime_s=1))
    found = re.search(r"the fastest predicted is (\S+) on (.+?); the deadline .* is 1s", err)
    assert found is not None, err
    assert found.group(1) != "1s" and "x 4" in found.group(2)  # the biggest cluster, and slower


def searched(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> str:
    code = main(["search", str(path), "--dry-run", "--quiet", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_force_searches_anyway(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = searched(capsys, example(tmp_path, max_runtime_s=1), "--force")
    assert "recommended: none" in out
    with TrialStore(tmp_path / "alexnet-10class.sqlite", create=False) as store:
        assert len(store.finished_trials()) >= 2


def test_a_deadline_just_within_reach_is_searched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The same job with a deadline twice the fastest prediction: hard, not hopeless."""
    err = refused(capsys, example(tmp_path, max_runtime_s=1))
    fastest = re.search(r"the fastest predicted is (\d+)m(\d+)s", err)
    assert fastest is not None, err
    reach = 2 * (60 * int(fastest.group(1)) + int(fastest.group(2)))
    out = searched(capsys, example(tmp_path, max_runtime_s=reach))
    assert re.match(r"recommended( \(untried[^)]*\))?: \S", out), out  # not refused, a pick


def test_the_api_raises_and_force_searches(tmp_path: Path) -> None:
    tiny = {"model": "alexnet", "batch_size": 128, "epochs": 1, "dataset_size": 1000}
    with pytest.raises(HopelessJobError, match="no candidate has even a 1% chance"):
        cherrypick.search("cnn", "cost", params=tiny, max_runtime_s=0.5, max_trials=2)
    result = cherrypick.search(
        "cnn", "cost", params=tiny, max_runtime_s=0.5, max_trials=2, min_trials=2, force=True
    )
    assert result.recommendation is None and len(result.trials) == 2
