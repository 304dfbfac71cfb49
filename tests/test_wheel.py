"""The wheel installs one top-level name, ``cherrypick``, with everything a search needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("cherrypick-*.whl")
    return built


def test_the_wheel_installs_only_cherrypick(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"cherrypick"}
    for needed in (
        "cherrypick/providers/simulated.py",
        "cherrypick/workloads/cnn/train.py",
        "cherrypick/perfmodel/predict.py",
        "cherrypick/catalog/refresh/build.py",
        "cherrypick/configs/gpus.yaml",
        "cherrypick/configs/catalogs/aws.csv",
        "cherrypick/configs/examples/resnet50-imagenet.yaml",
        "cherrypick/configs/replay/spark-sql.csv",
        "cherrypick/py.typed",
    ):
        assert needed in names
    # The catalog facts are inputs of the offline refresh, not package data.
    assert not [n for n in names if "catalog-facts" in n]
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["cherrypick"]


def test_every_package_of_the_tree_is_in_the_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    roots = {
        "cherrypick": "cherrypick",
        "providers": "cherrypick/providers",
        "workloads": "cherrypick/workloads",
    }
    for folder, installed in roots.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.relative_to(REPO / folder).as_posix()
            assert f"{installed}/{relative}" in names


def test_the_installed_wheel_runs_a_dry_run_search(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import cherrypick.providers, cherrypick.workloads.cnn, sys;"
        f"assert cherrypick.providers.__file__.startswith({str(target)!r});"
        "from cherrypick.cli import main;"
        "from importlib.resources import files;"
        "example = files('cherrypick.configs') / 'examples' / 'alexnet-10class.yaml';"
        "sys.exit(main(['search', str(example), '--dry-run', '--quiet', '--json',"
        " '--store', 'run.sqlite']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"recommendation": {' in proc.stdout
