"""``cherrypick profile``: the table, the JSON, the PNG, and the plain baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _tiny import tiny_train_args

from cherrypick.cli import main

TINY = tiny_train_args(image_size=64, iterations=6, sample_every=1)


def test_profile_prints_the_table_and_writes_json_and_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "alexnet.json"
    code = main(["profile", "--model", "alexnet", *TINY, "--output", str(output), "--plot"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "ms/iteration" in printed and "unattributed" in printed
    for layer in ("conv1", "conv5", "fc1", "fc2", "output", "loss"):
        assert f"\n{layer} " in printed
    assert json.loads(output.read_text())["status"] == "ok"
    assert output.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_no_profile_runs_the_same_training_without_hooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "plain.json"
    code = main(["profile", "--model", "alexnet", *TINY, "--no-profile", "--output", str(output)])
    assert code == 0
    result = json.loads(output.read_text())
    assert result["profile"]["enabled"] is False and result["layers"][0]["forward_ms"] is None
    assert "(phases)" in capsys.readouterr().out


def test_mistakes_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--model", "lenet", *TINY]) == 2
    assert "cherrypick profile: error: unknown model 'lenet'" in capsys.readouterr().err
