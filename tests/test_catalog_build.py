"""The catalog refresh command: how it turns catalog facts into our CSV files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cherrypick.providers.base import Offering

from cherrypick.catalog import load_catalog
from cherrypick.catalog.refresh import build_catalogs
from cherrypick.cli import main
from cherrypick.errors import ValidationError

REPO = Path(__file__).resolve().parents[1]
FACTS = REPO / "configs" / "catalog-facts"

AWS_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,"
    "Region,AvailabilityZone"
)
GCP_HEADER = (
    "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,"
    "AvailabilityZone,Price,SpotPrice"
)
AZURE_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,"
    "Region,Generation"
)
A100_INFO = "\"{'Gpus': [{'Name': 'A100', 'MemoryInfo': {'SizeInMiB': 40960}}]}\""
AWS_ROWS = [
    # three zones, one disagreeing on the on-demand price, one without spot
    f"p4d.24xlarge,A100,8.0,96.0,1152.0,{A100_INFO},32.7726,9.0,us-east-1,use1-az1",
    f"p4d.24xlarge,A100,8.0,96.0,1152.0,{A100_INFO},32.7726,5.0,us-east-1,use1-az2",
    f"p4d.24xlarge,A100,8.0,96.0,1152.0,{A100_INFO},30.0,,us-east-1,use1-az3",
    # a (type, zone) listed twice, only one twin with a spot price
    "p4de.24xlarge,A100-80GB,8.0,96.0,1152.0,,40.96575,7.8,us-east-1,use1-az1",
    "p4de.24xlarge,A100-80GB,8.0,96.0,1152.0,,40.96575,,us-east-1,use1-az1",
    # a tie between two zone prices keeps the lower
    "g5.xlarge,A10G,1.0,4.0,16.0,,1.2,0.4,us-east-1,use1-az1",
    "g5.xlarge,A10G,1.0,4.0,16.0,,1.0,0.5,us-east-1,use1-az2",
    "p5e.48xlarge,H200,8.0,192.0,2048.0,,,15.7,us-west-2,usw2-az3",  # no on-demand price
    "inf1.xlarge,Inferentia,1.0,4.0,8.0,,0.228,0.1,us-east-1,use1-az1",  # not a GPU
]
GCP_ROWS = [
    "a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-a,0.73948,0.29576",
    "a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-b,0.73948,0.29576",  # no A100 row in b
    "n1-standard-8,8.0,30.0,,,,us-central1,us-central1-a,0.38,0.08",
    "n1-highmem-2,2.0,13.0,,,,us-central1,us-central1-a,0.1183,0.03",  # no pairing rule
    ",,,A100,1,,us-central1,us-central1-a,2.93391,1.1472",
    ",,,T4,1,,us-central1,us-central1-a,0.35,0.14",
    ",,,B200,8,,us-central1,us-central1-b,90.216,",  # no a4 host row
]
AZURE_ROWS = [
    "Standard_ND96isr_H100_v5,H100,12,96.0,1900,H100,98.32,98.32,eastus,V2",
    "Standard_NV4as_v4,Radeon MI25,1,4.0,14,Radeon MI25,0.233,0.02563,eastus,V1",
    "Standard_NC6_Promo,K80,1,6.0,56,K80,0.18,,westus2,V1",
]


def _facts(folder: Path, aws: list[str] = AWS_ROWS) -> Path:
    folder.mkdir()
    files = {"aws_t.csv": [AWS_HEADER, *aws], "gcp_t.csv": [GCP_HEADER, *GCP_ROWS]}
    files["azure_t.csv"] = [AZURE_HEADER, *AZURE_ROWS]
    for name, lines in files.items():
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = [
        f"| {name} | catalogs/v7/{name[:-6]}/vms.csv | {'ab' * 20} | 1 | 1 |" for name in files
    ]
    (folder / "SOURCES.md").write_text("\n".join(["| file | path |", *table]), encoding="utf-8")
    return folder


def _by_type(offerings: list[Offering]) -> dict[str, Offering]:
    return {o.instance_type: o for o in offerings}


def _refresh(*args: str) -> int:
    return main(["catalog", "refresh", *args])


@pytest.fixture
def built(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    refreshed = build_catalogs(_facts(tmp_path / "facts"), out)
    assert {p: r.offerings for p, r in refreshed.items()} == {"aws": 3, "azure": 2, "gcp": 2}
    for result in refreshed.values():
        result.write()
    return out


def test_zones_collapse_to_one_regional_row(built: Path) -> None:
    aws = _by_type(load_catalog(paths=[built / "aws.csv"]))
    assert set(aws) == {"p4d.24xlarge", "p4de.24xlarge", "g5.xlarge"}
    p4d = aws["p4d.24xlarge"]
    assert (p4d.price_per_hour, p4d.spot_price_per_hour) == (32.7726, 5.0)
    assert (p4d.gpu_memory_gib, p4d.interconnect, p4d.extra["network_gbps"]) == (
        40,
        "nvswitch",
        400,
    )
    assert aws["p4de.24xlarge"].spot_price_per_hour == 7.8
    assert aws["g5.xlarge"].price_per_hour == 1.0
    header = (built / "aws.csv").read_text(encoding="utf-8")
    assert "p4d.24xlarge us-east-1: zones list 30, 32.7726; kept 32.7726" in header
    assert "left out: p5e.48xlarge us-west-2: no on-demand price [1 source row]" in header
    assert "left out: AWS Inferentia (inf1), not a GPU [1 source row]" in header
    assert "# source: skypilot-org/skypilot-catalog catalogs/v7/aws/vms.csv @ abab" in header


def test_gcp_sums_host_and_accelerator_of_the_same_zone(built: Path) -> None:
    gcp = _by_type(load_catalog(paths=[built / "gcp.csv"]))
    assert set(gcp) == {"a2-highgpu-1g", "n1-standard-8+1xT4"}
    a2 = gcp["a2-highgpu-1g"]
    assert a2.price_per_hour == pytest.approx(0.73948 + 2.93391)
    assert a2.spot_price_per_hour == pytest.approx(0.29576 + 1.1472)
    assert (a2.gpu, a2.gpus_per_node, a2.gpu_memory_gib) == ("A100", 1, 40)
    assert gcp["n1-standard-8+1xT4"].price_per_hour == pytest.approx(0.73)
    header = (built / "gcp.csv").read_text(encoding="utf-8")
    assert "left out: B200 x8 accelerator rows: no host row pairs with them" in header
    assert "left out: n1 host rows other than n1-standard-(8 x GPUs)" in header


def test_azure_corrections(built: Path) -> None:
    azure = _by_type(load_catalog(paths=[built / "azure.csv"]))
    nd = azure["Standard_ND96isr_H100_v5"]
    assert (nd.gpus_per_node, nd.spot_price_per_hour, nd.gpu_memory_gib) == (8, None, 80)
    assert azure["Standard_NC6_Promo"].extra["network_gbps"] == 10  # no published figure
    assert "Standard_NV4as_v4" not in azure
    header = (built / "azure.csv").read_text(encoding="utf-8")
    assert "AcceleratorCount 12 corrected to 8" in header
    assert "spot 98.32 >= on-demand: left empty" in header


def test_unknown_accelerator_stops_the_refresh_naming_its_row(tmp_path: Path) -> None:
    row = "x9.large,Z100,1.0,4.0,16.0,,1.0,,us-east-1,use1-az1"
    with pytest.raises(ValidationError, match="unknown accelerator 'Z100'") as caught:
        build_catalogs(_facts(tmp_path / "facts", aws=[*AWS_ROWS, row]), tmp_path / "out")
    error = caught.value
    assert (error.source, error.line, error.field) == (
        "aws_t.csv",
        len(AWS_ROWS) + 2,
        "AcceleratorName",
    )


def test_zones_disagreeing_on_the_machine_stop_the_refresh(tmp_path: Path) -> None:
    row = f"p4d.24xlarge,A100,8.0,48.0,1152.0,{A100_INFO},32.7726,,us-east-1,use1-az9"
    with pytest.raises(ValidationError, match="p4d.24xlarge us-east-1: zones disagree"):
        build_catalogs(_facts(tmp_path / "facts", aws=[*AWS_ROWS, row]), tmp_path / "out")


def test_command_reports_a_bad_facts_folder_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _refresh("--from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SOURCES.md" in err and "Traceback" not in err


def test_refresh_reproduces_the_committed_catalogs(tmp_path: Path) -> None:
    assert _refresh("--from", str(FACTS), "--out", str(tmp_path)) == 0
    for provider in ("aws", "azure", "gcp"):
        committed = REPO / "configs" / "catalogs" / f"{provider}.csv"
        assert (tmp_path / f"{provider}.csv").read_bytes() == committed.read_bytes(), provider


def test_zones_are_kept_cheapest_first_in_name_order_on_ties(built: Path) -> None:
    aws = _by_type(load_catalog(paths=[built / "aws.csv"]))
    assert aws["p4d.24xlarge"].extra["zones"] == ("use1-az3", "use1-az1", "use1-az2")
    assert aws["g5.xlarge"].extra["zones"] == ("use1-az2", "use1-az1")
    assert aws["p4de.24xlarge"].extra["zones"] == ("use1-az1",)  # twins: one zone
    gcp = _by_type(load_catalog(paths=[built / "gcp.csv"]))
    assert gcp["a2-highgpu-1g"].extra["zones"] == ("us-central1-a",)  # b has no A100 row
    azure = load_catalog(paths=[built / "azure.csv"])
    assert all(o.extra["zones"] == () for o in azure)
    assert "# notes: zones: the zones of the region" in (built / "aws.csv").read_text("utf-8")


RETIRED_HEADER = "provider,series,instance_types,retired,source"


def _retire(facts: Path, *rows: str) -> None:
    lines = ["# a comment", RETIRED_HEADER, *rows]
    (facts / "retired-offerings.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_types_retired_by_the_retrieval_date_are_left_out_with_their_notice(
    tmp_path: Path,
) -> None:
    facts = _facts(tmp_path / "facts")
    _retire(
        facts,
        "azure,NC_Promo (K80),Standard_NC*_Promo,2023-09-06,Azure's NC retirement notice",
        "aws,later,g5.*,2030-01-01,a notice from the future",
    )
    refreshed = build_catalogs(facts, tmp_path / "out")
    azure = refreshed["azure"].text
    assert "Standard_NC6_Promo" not in azure.split("provider,region")[1]
    assert (
        "left out, retired 2023-09-06 (NC_Promo (K80)): Standard_NC6_Promo; per Azure's NC "
        "retirement notice [1 source row]" in azure
    )
    assert refreshed["azure"].offerings == 1
    assert "g5.xlarge" in refreshed["aws"].text  # retires after the retrieval date
    earlier = build_catalogs(facts, tmp_path / "out", retrieved="2023-01-01")
    assert earlier["azure"].offerings == 2


def test_a_bad_retirement_row_names_its_line(tmp_path: Path) -> None:
    facts = _facts(tmp_path / "facts")
    _retire(facts, "azure,NC,Standard_NC6,soon,a notice")
    with pytest.raises(ValidationError, match="not a date") as caught:
        build_catalogs(facts, tmp_path / "out")
    assert (caught.value.line, caught.value.field) == (3, "retired")


def _previous(out: Path, price: str) -> None:
    """An aws.csv at ``out`` whose g5.xlarge cost ``price``: the catalog a refresh replaces."""
    out.mkdir(parents=True, exist_ok=True)
    header = "provider,region,instance_type,price_per_hour"  # an older schema is still compared
    text = f"# an older catalog\n{header}\naws,us-east-1,g5.xlarge,{price}\n"
    (out / "aws.csv").write_text(text, encoding="utf-8")


def test_a_price_that_fell_over_3x_is_dropped_and_one_that_rose_is_kept(tmp_path: Path) -> None:
    facts, out = _facts(tmp_path / "facts"), tmp_path / "out"
    _previous(out, "3.5")  # the facts say 1.0: a 3.5x fall
    fell = build_catalogs(facts, out)["aws"]
    (line,) = fell.flags
    assert line.startswith("flagged: g5.xlarge us-east-1 1: was 3.5 in the catalog it replaces")
    assert line.endswith("dropped (a low price; --keep-flagged keeps it)")
    assert f"# notes: {line}" in fell.text and "\naws,us-east-1,g5.xlarge," not in fell.text
    assert "removed: aws us-east-1 g5.xlarge" in " ".join(fell.changes)
    kept = build_catalogs(facts, out, keep_flagged=True)["aws"]
    assert kept.flags[0].endswith("; kept") and "\naws,us-east-1,g5.xlarge," in kept.text
    _previous(out, "0.3")  # a 3.3x rise: flagged, kept
    rose = build_catalogs(facts, out)["aws"]
    assert rose.flags[0].endswith("(3.33x); kept") and "\naws,us-east-1,g5.xlarge," in rose.text


def test_dry_run_writes_nothing_and_diff_lists_the_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facts, out = _facts(tmp_path / "facts"), tmp_path / "out"
    assert _refresh("--from", str(facts), "--out", str(out), "--dry-run") == 0
    assert not out.exists() or not list(out.iterdir())
    printed = capsys.readouterr().out
    assert f"{out / 'aws.csv'}: would write 3 offerings (3 added, 0 removed, 0 changed)" in printed
    assert "  added: aws us-east-1 p4d.24xlarge (8x A100, $32.7726/h)" in printed
    _previous(out, "1.0")
    assert _refresh("--from", str(facts), "--out", str(out), "--provider", "aws", "--diff") == 0
    printed = capsys.readouterr().out
    assert "wrote 3 offerings (2 added, 0 removed, 1 changed)" in printed
    assert "changed: aws us-east-1 g5.xlarge: vcpus '' -> '4';" in printed
    assert sorted(p.name for p in out.iterdir()) == ["aws.csv"]  # only the provider asked for


def test_refresh_needs_a_source_and_a_region_only_with_the_apis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _refresh("--out", str(tmp_path)) == 2
    assert "give --provider aws|gcp|azure" in capsys.readouterr().err
    facts = _facts(tmp_path / "facts")
    assert _refresh("--from", str(facts), "--out", str(tmp_path), "--region", "us-east-1") == 2
    assert "--region: only for a refresh from the APIs" in capsys.readouterr().err
    assert _refresh("--from", str(facts), "--out", str(tmp_path), "--retrieved", "soon") == 2
    assert "--retrieved: not a date" in capsys.readouterr().err


def test_module_entry_point_is_the_catalog_refresh_command(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "cherrypick.catalog.refresh", "--from", str(tmp_path / "no")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("cherrypick catalog: error: ") and "SOURCES.md" in run.stderr
