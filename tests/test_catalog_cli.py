"""``cherrypick catalog list``: the offerings as a table, filtered, cheapest first."""

from __future__ import annotations

from pathlib import Path

import pytest

from cherrypick.catalog import COLUMNS
from cherrypick.cli import main


def _list(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["catalog", "list", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def _price(line: str) -> float:
    return float(line.split()[-3])  # ... $/h, spot $/h, zones


def test_list_shows_the_matching_offerings_cheapest_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, lines, err = _list(capsys, "--gpu", "A100", "--gpu", "h100", "--max-price", "40")
    assert (code, err) == (0, "")
    header, *rows, total = lines
    assert header.split() == [
        "provider",
        "region",
        "instance",
        "type",
        "GPUs",
        "GPU",
        "mem",
        "vCPUs",
        "$/h",
        "spot",
        "$/h",
        "zones",
    ]
    assert rows and total == f"{len(rows)} offerings"
    prices = [_price(r) for r in rows]
    assert prices == sorted(prices) and max(prices) <= 40
    assert all(" A100 " in r or " H100 " in r for r in rows)
    p4d = next(r for r in rows if "us-east-1" in r and "p4d.24xlarge" in r)
    assert p4d.split()[3:] == ["8x", "A100", "40", "GiB", "96", "32.7726", "5.0933", "3"]


def test_list_filters_by_provider_region_and_gpu_count(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = _list(capsys, "--provider", "gcp", "--region", "us-east4", "--min-gpus", "8")
    rows = lines[1:-1]
    assert code == 0 and rows
    assert all(r.split()[:2] == ["gcp", "us-east4"] and r.split()[3].startswith("8x") for r in rows)


def test_list_reads_the_catalog_files_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.csv"
    row = "aws,us-east-1,g5.xlarge,4,16,A10G,1,22.35,pcie,10,1.006,,use1-az1 use1-az2"
    path.write_text(f"# mine\n{','.join(COLUMNS)}\n{row}\n", encoding="utf-8")
    code, lines, _ = _list(capsys, "--catalog", str(path))
    assert code == 0 and lines[-1] == "1 offering"
    assert lines[1].split()[-3:] == ["1.0060", "-", "2"]
    assert _list(capsys, "--catalog", str(path), "--max-price", "1")[1] == ["no offering matches"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--max-price", "-1"],
            "--max-price: expected a positive number of USD per hour, got '-1'",
        ),
        (["--max-price", "cheap"], "--max-price: expected a positive number"),
        (["--min-gpus", "0"], "--min-gpus: expected a whole number >= 1, got '0'"),
        (["--min-gpus", "2.5"], "--min-gpus: expected a whole number >= 1"),
        (["--gpu", "Z9"], "unknown GPU 'Z9'; known: A10, A100"),
        (["--provider", "ibm"], "unknown provider 'ibm'; known: aws, azure, gcp"),
        (["--region", "mars-1"], "unknown region 'mars-1'; known: "),
    ],
)
def test_bad_values_are_one_line_errors_with_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, lines, err = _list(capsys, *args)
    assert (code, lines) == (2, [])
    assert err.startswith(f"cherrypick catalog: error: {message}") and err.count("\n") == 1
