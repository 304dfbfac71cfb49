"""Replay tables: validation, features and lookups."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cherrypick.bench.tables import load_table
from cherrypick.errors import UnknownNameError, ValidationError

HEADER = "workload,vm_type,nodes,vcpus_per_node,price_per_node_hour,completed,runtime_s"


def _write(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("\n".join(["# a comment", header, *rows]) + "\n")
    return path


def test_bundled_table_loads_with_features(bundled_table: Path) -> None:
    table = load_table(bundled_table)
    assert set(table.workloads) == {"tpch", "tpcds"}
    tpch = table.workloads["tpch"]
    assert tpch.size == 52
    assert "log(total_vcpus)" in tpch.feature_names  # nodes x vcpus_per_node
    assert not any(n.startswith("vm_type=") for n in tpch.feature_names)  # = family + size
    assert np.isfinite(tpch.features).all()
    # cost_usd overrides price x runtime: the known price is cost / runtime.
    assert np.allclose(tpch.price_per_hour * tpch.runtime_s / 3600, tpch.cost_usd)


def test_price_per_node_times_nodes(tmp_path: Path) -> None:
    t = load_table(_write(tmp_path, "w,a,2,4,0.5,True,3600", "w,b,4,4,0.5,False,100"))
    w = t.workloads["w"]
    assert list(w.price_per_hour) == [1.0, 2.0]
    assert list(w.cost_usd) == [1.0, 2.0 * 100 / 3600]
    assert list(w.completed) == [True, False]
    assert w.optimum_cost(None) == 1.0  # the failed row is never the optimum


@pytest.mark.parametrize(
    ("rows", "header", "line", "field"),
    [
        (["w,a,2,4,0.5,True,fast"], HEADER, 3, "runtime_s"),
        (["w,a,2,4,-0.5,True,10"], HEADER, 3, "price_per_node_hour"),
        (["w,a,2,4,0.5,maybe,10"], HEADER, 3, "completed"),
        ([",a,2,4,0.5,True,10"], HEADER, 3, "workload"),
        (["w,a,2,4,0.5,True,10"], HEADER.replace("runtime_s", "seconds"), 2, "runtime_s"),
    ],
)
def test_bad_rows_name_file_line_and_field(
    tmp_path: Path, rows: list[str], header: str, line: int, field: str
) -> None:
    path = _write(tmp_path, *rows, header=header)
    with pytest.raises(ValidationError) as err:
        load_table(path)
    assert (err.value.line, err.value.field) == (line, field)
    assert str(path) in str(err.value)


def test_wrong_number_of_values(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="line 4"):
        load_table(_write(tmp_path, "w,a,2,4,0.5,True,10", "w,a,2,4,0.5,True"))


def test_cli_reports_bad_table_in_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "w,a,2,4,0.5,True,10", "w,b,2,4,-1,True,10")
    proc = subprocess.run(
        [sys.executable, "-m", "cherrypick", "bench", "replay", "--table", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{path}, line 4, field 'price_per_node_hour'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_table_lookups(bundled_table: Path) -> None:
    table = load_table(bundled_table)
    (tpch,) = table.select(["tpch"])
    assert tpch.size == len(tpch.runtime_s) == len(tpch.cost_usd) > 0
    assert np.allclose(tpch.cost_usd, tpch.price_per_hour * tpch.runtime_s / 3600)
    with pytest.raises(UnknownNameError, match="known: tpcds, tpch"):
        table.select(["nope"])
