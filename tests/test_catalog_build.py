"""The catalog refresh command: how it turns catalog facts into our CSV files."""

from __future__ import annotations

from pathlib import Path

import pytest
from cherrypick.providers.base import Offering

from cherrypick.catalog import load_catalog
from cherrypick.catalog.refresh.build import build_catalogs, main
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


@pytest.fixture
def built(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    counts = build_catalogs(_facts(tmp_path / "facts"), out)
    assert counts == {"aws": 3, "azure": 2, "gcp": 2}
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
    assert main(["--from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SOURCES.md" in err and "Traceback" not in err


def test_refresh_reproduces_the_committed_catalogs(tmp_path: Path) -> None:
    assert main(["--from", str(FACTS), "--out", str(tmp_path)]) == 0
    for provider in ("aws", "azure", "gcp"):
        committed = REPO / "configs" / "catalogs" / f"{provider}.csv"
        assert (tmp_path / f"{provider}.csv").read_bytes() == committed.read_bytes(), provider
