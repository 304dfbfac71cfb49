"""The search file: bundled examples load, and every mistake names its field and exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cherrypick.cli import main
from cherrypick.errors import InputError, ValidationError
from cherrypick.spec import load_spec, parse_spec

REPO = Path(__file__).resolve().parents[1]
FILES = sorted((REPO / "configs" / "examples").glob("*.yaml"))
#: Search files; the others are inventories of hosts that a search file names.
EXAMPLES = [p for p in FILES if "workload:" in p.read_text()]
INVENTORIES = [p for p in FILES if p not in EXAMPLES]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_bundled_examples_are_valid(path: Path) -> None:
    spec = load_spec(path)
    assert spec.workload.name == "cnn"
    assert spec.objective.max_runtime_s is not None


def test_examples_cover_the_three_models() -> None:
    models = {load_spec(p).workload.params["model"] for p in EXAMPLES}
    assert {"alexnet", "vgg11", "resnet50"} <= models


@pytest.mark.parametrize("path", INVENTORIES, ids=lambda p: p.stem)
def test_bundled_inventories_are_valid_and_named_by_a_search_file(path: Path) -> None:
    from cherrypick.providers.inventory import load_inventory

    assert load_inventory(path).offerings()
    named = {load_spec(p).inventory for p in EXAMPLES}
    assert f"configs/examples/{path.name}" in named


def test_defaults_fill_every_section() -> None:
    spec = parse_spec({"workload": {"name": "cnn"}})
    assert (spec.objective.kind, spec.budget.max_trials, spec.parallel) == ("cost", 20, 1)
    assert spec.stop.min_trials == 8 and spec.filters.max_nodes == 4
    assert "store" not in spec.identity()


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (
            {"workload": {"name": "cnn"}, "objective": {"max_runtime_s": -5}},
            "objective.max_runtime_s",
            "greater than 0",
        ),
        (
            {"workload": {"name": "cnn"}, "objective": {"kind": "speed"}},
            "objective.kind",
            "'cost' or 'runtime'",
        ),
        (
            {"workload": {"name": "cnn"}, "filters": {"max_nodes": "many"}},
            "filters.max_nodes",
            "integer",
        ),
        ({"workload": {"name": "cnn"}, "budgett": {}}, "budgett", "unknown field"),
        (
            {"workload": {"name": "cnn"}, "simulator": {"model_error": -0.1}},
            "simulator.model_error",
            "greater than or equal to 0",
        ),
        ({"workload": {"name": "cnn"}, "prior": "oracle"}, "prior", "'performance-model'"),
        ({"objective": {}}, "workload", "missing"),
        (
            {"workload": {"name": "cnn"}, "parallel": 5, "budget": {"max_trials": 3}},
            None,
            "exceeds",
        ),
    ],
)
def test_mistakes_name_the_field(data: dict[str, object], field: str | None, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_spec(data, source="s.yaml")
    assert caught.value.field == field
    assert words in str(caught.value)


def test_cli_reports_a_bad_field_in_one_line_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workload: {name: cnn}\nobjective: {kind: cost, max_runtime_s: -1}\n")
    done = subprocess.run(
        [sys.executable, "-m", "cherrypick", "search", str(bad), "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "objective.max_runtime_s" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_malformed_yaml_gives_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workload:\n  name: cnn\n  params: [unclosed\n")
    with pytest.raises(ValidationError) as caught:
        load_spec(bad)
    assert caught.value.line is not None and caught.value.line >= 3


def test_unknown_workload_lists_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("workload: {name: transformer}\n")
    assert main(["search", str(spec), "--dry-run", "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "unknown workload 'transformer'; known: cnn" in capsys.readouterr().err


def test_missing_file_and_missing_arguments_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_spec(tmp_path / "nope.yaml")
    assert main(["search"]) == 2
