"""The bundled catalogs, their loader's validation, filters, candidates and features."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from cherrypick.providers.base import Offering

from cherrypick.catalog import (
    COLUMNS,
    FEATURE_NAMES,
    CatalogFilter,
    candidate_features,
    candidates,
    load_catalog,
    load_gpus,
)
from cherrypick.errors import InputError, UnknownNameError, ValidationError

GOOD_ROW = (
    "aws,us-east-1,p4d.24xlarge,96,1152,A100,8,40,nvswitch,400,32.7726,5.0933,use1-az2 use1-az1"
)


@pytest.fixture(scope="module")
def offerings() -> list[Offering]:
    return load_catalog()


def _find(offerings: list[Offering], provider: str, region: str, instance_type: str) -> Offering:
    (match,) = [
        o
        for o in offerings
        if (o.provider, o.region, o.instance_type) == (provider, region, instance_type)
    ]
    return match


def test_bundled_catalogs_cover_every_provider_with_known_gpus(offerings: list[Offering]) -> None:
    gpus = load_gpus()
    assert {o.provider for o in offerings} == {"aws", "azure", "gcp"}
    assert {o.gpu for o in offerings} <= set(gpus)
    assert all(o.price_per_hour > 0 and o.extra["network_gbps"] > 0 for o in offerings)
    assert all(
        o.spot_price_per_hour is None or o.spot_price_per_hour < o.price_per_hour for o in offerings
    )


# Prices as the SkyPilot catalog rows give them (gpu_offers_summary.csv checks them by hand).
@pytest.mark.parametrize(
    ("provider", "region", "instance_type", "gpu", "gpus", "price"),
    [
        ("aws", "us-east-1", "p4d.24xlarge", "A100", 8, 32.7726),
        ("aws", "us-east-1", "g5.xlarge", "A10G", 1, 1.006),
        ("aws", "us-east-1", "p5.48xlarge", "H100", 8, 98.32),
        ("gcp", "us-central1", "a2-highgpu-1g", "A100", 1, 0.73948 + 2.93391),  # host + 1 A100
        ("gcp", "us-east4", "a3-highgpu-8g", "H100", 8, 9.46006 + 78.37241),
        ("gcp", "us-central1", "n1-standard-8+1xT4", "T4", 1, 0.38 + 0.35),
        ("azure", "eastus", "Standard_ND96isr_H100_v5", "H100", 8, 98.32),
        ("azure", "eastus", "Standard_NC24ads_A100_v4", "A100-80GB", 1, 3.673),
    ],
)
def test_well_known_offerings_have_their_source_figures(
    offerings: list[Offering],
    provider: str,
    region: str,
    instance_type: str,
    gpu: str,
    gpus: int,
    price: float,
) -> None:
    offering = _find(offerings, provider, region, instance_type)
    assert (offering.gpu, offering.gpus_per_node) == (gpu, gpus)
    assert offering.price_per_hour == pytest.approx(price, abs=1e-6)


def test_documented_corrections_are_applied(offerings: list[Offering]) -> None:
    nd_h100 = _find(offerings, "azure", "eastus", "Standard_ND96isr_H100_v5")
    assert nd_h100.spot_price_per_hour is None  # the source's spot == on-demand placeholder
    assert nd_h100.interconnect == "nvswitch" and nd_h100.extra["network_gbps"] == 3200
    nc_h100 = _find(offerings, "azure", "eastus", "Standard_NC40ads_H100_v5")
    assert (nc_h100.gpu, nc_h100.gpu_memory_gib) == ("H100-NVL", 94)
    p4de = _find(offerings, "aws", "us-east-1", "p4de.24xlarge")
    assert p4de.spot_price_per_hour == pytest.approx(5.8394)  # lowest of the duplicate twins
    keys = {(o.provider, o.instance_type) for o in offerings}
    assert ("aws", "p5e.48xlarge") not in keys  # no on-demand price anywhere
    assert not any(name.startswith(("g4ad.", "inf", "trn", "f1.")) for _, name in keys)
    assert not any(o.gpu == "B200" for o in offerings)


def test_offerings_carry_their_zones_cheapest_first(offerings: list[Offering]) -> None:
    p4d = _find(offerings, "aws", "us-east-1", "p4d.24xlarge")
    assert p4d.extra["zones"] == ("use1-az1", "use1-az2", "use1-az6")  # AWS zone IDs, one price
    a2 = _find(offerings, "gcp", "us-central1", "a2-highgpu-1g")
    assert a2.extra["zones"] and all(z.startswith("us-central1-") for z in a2.extra["zones"])
    assert all(o.extra["zones"] == () for o in offerings if o.provider == "azure")  # none in facts
    aws = [o for o in offerings if o.provider == "aws"]
    assert all(
        o.extra["zones"] and len(set(o.extra["zones"])) == len(o.extra["zones"]) for o in aws
    )


def test_retired_and_wrongly_priced_offerings_are_not_in_the_bundled_catalog(
    offerings: list[Offering],
) -> None:
    assert not [o for o in offerings if o.gpu == "K80"]  # Azure NC-series, retired 2023-09-06
    azure = {o.instance_type for o in offerings if o.provider == "azure"}
    assert not azure & {"Standard_NC6s_v3", "Standard_NC24rs_v3", "Standard_NV12s_v3"}
    assert "Standard_NC24ads_A100_v4" in azure
    a3 = {o.region for o in offerings if o.instance_type == "a3-highgpu-8g"}
    assert a3 == {"us-east4", "europe-west4"}  # us-central1's 43.07 is half Google's list price


def test_zones_listed_twice_are_refused(tmp_path: Path) -> None:
    row = GOOD_ROW.replace("use1-az2 use1-az1", "use1-az2 use1-az2")
    with pytest.raises(ValidationError, match="zone listed twice: use1-az2") as caught:
        load_catalog(paths=[_catalog(tmp_path, row)])
    assert (caught.value.line, caught.value.field) == (4, "zones")


def test_a_row_without_zones_reads_as_no_zones(tmp_path: Path) -> None:
    (offering,) = load_catalog(paths=[_catalog(tmp_path, GOOD_ROW.rsplit(",", 1)[0] + ",")])
    assert offering.extra["zones"] == ()
    (zoned,) = load_catalog(paths=[_catalog(tmp_path, GOOD_ROW)])
    assert zoned.extra["zones"] == ("use1-az2", "use1-az1")  # the file's order is kept
    assert zoned.extra["retrieved"] == "2026-11-21"  # the file's '# retrieved:' comment


def test_providers_argument_loads_only_those(offerings: list[Offering]) -> None:
    gcp = load_catalog(providers=["gcp"])
    assert gcp == [o for o in offerings if o.provider == "gcp"]
    with pytest.raises(UnknownNameError, match="aws, azure, gcp"):
        load_catalog(providers=["oracle"])


def test_filter_keeps_matching_offerings(offerings: list[Offering]) -> None:
    kept = CatalogFilter(providers="aws", gpus=["a100", "H100"], regions=["us-east-1"]).apply(
        offerings
    )
    assert kept and {(o.provider, o.region) for o in kept} == {("aws", "us-east-1")}
    assert {o.gpu for o in kept} == {"A100", "H100"}
    big = CatalogFilter(min_gpu_memory_gib=80, max_price_per_hour=20).apply(offerings)
    assert big and all(o.gpu_memory_gib >= 80 and o.price_per_hour <= 20 for o in big)


@pytest.mark.parametrize(
    ("chosen", "listed"),
    [
        (CatalogFilter(providers=["aws", "ibm"]), "unknown provider 'ibm'; known: aws, azure"),
        (CatalogFilter(gpus=["A1000"]), "unknown GPU 'A1000'; known: .*H100"),
        (CatalogFilter(regions=["mars-1"]), "unknown region 'mars-1'; known: .*us-east-1"),
    ],
)
def test_filter_rejects_unknown_names_listing_valid_ones(
    offerings: list[Offering], chosen: CatalogFilter, listed: str
) -> None:
    with pytest.raises(UnknownNameError, match=listed) as caught:
        chosen.apply(offerings)
    assert caught.value.exit_code == 2


def test_filter_rejects_bad_bounds() -> None:
    with pytest.raises(InputError, match="max_nodes"):
        CatalogFilter(max_nodes=0)
    with pytest.raises(InputError, match="max_price_per_hour"):
        CatalogFilter(max_price_per_hour=-1)


def test_candidates_multiply_nodes_within_the_whole_price(offerings: list[Offering]) -> None:
    t4 = _find(offerings, "aws", "us-east-1", "g4dn.xlarge")  # 0.526 per hour
    assert [c.nodes for c in candidates([t4], max_nodes=4)] == [1, 2, 3, 4]
    assert [c.nodes for c in candidates([t4], max_nodes=4, max_price_per_hour=1.6)] == [1, 2, 3]
    chosen = CatalogFilter(gpus=["T4"], max_nodes=2, max_price_per_hour=1.0).candidates(offerings)
    assert chosen and all(c.price_per_hour <= 1.0 and c.nodes <= 2 for c in chosen)
    with pytest.raises(InputError):
        candidates([t4], max_nodes=0)


def test_features_are_finite_and_vary_over_the_catalog(offerings: list[Offering]) -> None:
    gpus = load_gpus()
    chosen = candidates(offerings, max_nodes=4)
    names, matrix = candidate_features(chosen, gpus)
    assert names == list(FEATURE_NAMES)
    assert matrix.shape == (len(chosen), len(names))
    assert np.isfinite(matrix).all()
    assert (matrix.std(axis=0) > 0).all()  # no constant column
    row = chosen.index(next(c for c in chosen if c.key == "aws/us-east-1/p4d.24xlarge" + "x2"))
    features = dict(zip(names, matrix[row], strict=True))
    assert features["log2_nodes"] == 1 and features["log2_total_gpus"] == 4
    assert features["log2_total_fp16_tflops"] == pytest.approx(math.log2(312 * 16))
    assert features["interconnect"] == 2  # nvswitch


def test_features_use_fp32_rate_for_gpus_without_fast_fp16(offerings: list[Offering]) -> None:
    gpus = load_gpus()
    p4 = _find(offerings, "gcp", "europe-west4", "n1-standard-8+1xP4")
    assert gpus["P4"].fp16_tflops is None
    _, matrix = candidate_features(candidates([p4], max_nodes=1), gpus)
    assert matrix[0, 0] == pytest.approx(math.log2(gpus["P4"].fp32_tflops))


def _catalog(tmp_path: Path, *rows: str, header: str = ",".join(COLUMNS)) -> Path:
    path = tmp_path / "bad.csv"
    lines = ["# source: a test", "# retrieved: 2026-11-21", header, *rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _replace(field: str, value: str) -> str:
    cells = GOOD_ROW.split(",")
    cells[COLUMNS.index(field)] = value
    return ",".join(cells)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("price_per_hour", "-3", "positive"),
        ("price_per_hour", "", "missing on-demand price"),
        ("vcpus", "many", "not a number: 'many'"),
        ("memory_gib", "nan", "finite"),
        ("memory_gib", "0", "positive"),
        ("gpus_per_node", "0", "whole number"),
        ("gpus_per_node", "2.5", "whole number"),
        ("gpu", "A1000", "known: "),
        ("provider", "oracle", "unknown provider 'oracle'; known: aws, azure, gcp"),
        ("interconnect", "infiniband", "known: pcie, nvlink, nvswitch"),
        ("spot_price_per_hour", "free", "not a number"),
    ],
)
def test_bad_value_names_file_line_and_field(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    path = _catalog(tmp_path, GOOD_ROW, _replace(field, value))
    with pytest.raises(ValidationError) as caught:
        load_catalog(paths=[path])
    error = caught.value
    assert (error.source, error.line, error.field) == (str(path), 5, field)
    assert message in error.message
    assert error.exit_code == 2 and "\n" not in str(error)
    assert str(error).startswith(f"{path}, line 5, field '{field}': ")


def test_unknown_gpu_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown GPU 'A1000'; known: .*H100") as caught:
        load_catalog(paths=[_catalog(tmp_path, _replace("gpu", "A1000"))])
    assert (caught.value.line, caught.value.field) == (4, "gpu")


def test_missing_column_is_named_on_the_header_line(tmp_path: Path) -> None:
    header = ",".join(c for c in COLUMNS if c != "network_gbps")
    row = ",".join(
        v for c, v in zip(COLUMNS, GOOD_ROW.split(","), strict=True) if c != "network_gbps"
    )
    with pytest.raises(ValidationError, match="missing column") as caught:
        load_catalog(paths=[_catalog(tmp_path, row, header=header)])
    assert (caught.value.line, caught.value.field) == (3, "network_gbps")


def test_repeated_or_unknown_column_is_named(tmp_path: Path) -> None:
    header = ",".join(COLUMNS)
    with pytest.raises(ValidationError, match="duplicate column") as caught:
        load_catalog(paths=[_catalog(tmp_path, GOOD_ROW + ",1", header=header + ",gpu")])
    assert (caught.value.line, caught.value.field) == (3, "gpu")
    with pytest.raises(ValidationError, match="unexpected column") as caught:
        load_catalog(paths=[_catalog(tmp_path, GOOD_ROW + ",x", header=header + ",colour")])
    assert (caught.value.line, caught.value.field) == (3, "colour")


def test_duplicates_are_caught_within_and_across_files(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="duplicate of line 4") as caught:
        load_catalog(paths=[_catalog(tmp_path, GOOD_ROW, "", "# a comment", GOOD_ROW)])
    assert (caught.value.line, caught.value.field) == (7, "instance_type")
    first = _catalog(tmp_path, GOOD_ROW)
    second = tmp_path / "second.csv"
    second.write_text(first.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ValidationError, match=f"duplicate of {first}, line 4"):
        load_catalog(paths=[first, second])


def test_short_row_and_unreadable_file_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="expected 13 fields, found 12") as caught:
        load_catalog(paths=[_catalog(tmp_path, GOOD_ROW.rsplit(",", 1)[0])])
    assert caught.value.line == 4
    with pytest.raises(ValidationError, match="cannot read"):
        load_catalog(paths=[tmp_path / "absent.csv"])


def test_bundled_gpu_file_has_sourced_figures() -> None:
    gpus = load_gpus()
    assert {"A100", "A100-80GB", "H100", "H200", "T4", "V100", "L4", "K80"} <= set(gpus)
    assert all(spec.source and spec.fp32_tflops > 0 for spec in gpus.values())
    assert gpus["A100-80GB"].memory_gib == 80 and gpus["A100"].memory_gib == 40
    assert gpus["K80"].fp16_tflops is None and gpus["K80"].half_precision_tflops == 4.4


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("T4:\n  memory_gib: 16\n  fp32_tflops: fast\n", 3, "T4.fp32_tflops", "not a number"),
        ("T4:\n  memory_gib: -1\n", 2, "T4.memory_gib", "positive"),
        (
            "T4:\n  memory_gib: 16\n  fp32_tflops: 8\n  memory_bandwidth_gbs: 320\n  pcie_gen: 3\n",
            1,
            "T4.source",
            "missing source",
        ),
        ("T4:\n  memory_gib: 16\n  colour: green\n", 3, "T4.colour", "unknown field"),
        ("T4: [1, 2\n", 2, None, "not valid YAML"),
    ],
)
def test_bad_gpu_file_names_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, message: str
) -> None:
    path = tmp_path / "gpus.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError, match=message) as caught:
        load_gpus(path)
    assert (caught.value.line, caught.value.field) == (line, field)
