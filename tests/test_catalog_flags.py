"""The price flags of every catalog refresh: moved since the last catalog, off other regions."""

from __future__ import annotations

import pytest

from cherrypick.catalog.refresh.flags import apply_flags, flag_rows
from cherrypick.catalog.refresh.offers import ZoneOffer
from cherrypick.catalog.refresh.rows import Row


def _row(region: str, price: float, instance_type: str = "a3-highgpu-8g") -> Row:
    offer = ZoneOffer(region, None, instance_type, 208, 1872.0, "H100", 8, None, price, None)
    return Row(offer, price, None, ())


def _kept(rows: list[Row], previous: dict[tuple[str, str], float] | None = None) -> list[str]:
    kept, _ = apply_flags(rows, flag_rows(rows, previous or {}), keep_flagged=False)
    return [r.offer.region for r in kept]


def test_a_price_far_below_the_other_regions_is_flagged_and_dropped() -> None:
    # The SkyPilot v7 GCP prices of a3-highgpu-8g: us-central1 is 0.43x the others' median.
    rows = [
        _row("us-central1", 43.06615),
        _row("us-east4", 87.83247),
        _row("europe-west4", 111.81719),
    ]
    (flag,) = flag_rows(rows, {})
    assert (flag.row.offer.region, flag.low) == ("us-central1", True)
    assert flag.reason == "0.43x the median of its other regions (99.82483)"
    assert _kept(rows) == ["us-east4", "europe-west4"]
    kept, lines = apply_flags(rows, [flag], keep_flagged=True)
    assert len(kept) == 3 and lines[0].endswith("; kept")


def test_a_price_far_above_the_other_regions_is_flagged_but_kept() -> None:
    rows = [_row("a", 10.0), _row("b", 10.5), _row("c", 19.0)]
    (flag,) = flag_rows(rows, {})
    assert (flag.row.offer.region, flag.low) == ("c", False)
    assert _kept(rows) == ["a", "b", "c"]


def test_two_regions_apart_by_more_than_the_limit_flag_both_and_drop_the_low_one() -> None:
    rows = [_row("a", 10.0), _row("b", 18.5)]
    assert {(f.row.offer.region, f.low) for f in flag_rows(rows, {})} == {("a", True), ("b", False)}
    assert _kept(rows) == ["b"]


@pytest.mark.parametrize("price", [18.0, 10.0 / 1.8])
def test_a_ratio_of_exactly_the_limit_is_not_flagged(price: float) -> None:
    assert flag_rows([_row("a", 10.0), _row("b", price)], {}) == []


def test_other_instance_types_and_lone_regions_are_not_compared() -> None:
    rows = [_row("a", 1.0, "g2-standard-4"), _row("b", 100.0, "a3-highgpu-8g")]
    assert flag_rows(rows, {}) == []


def test_a_move_of_more_than_3x_from_the_previous_catalog_is_flagged() -> None:
    rows = [_row("a", 10.0), _row("b", 31.0, "other")]
    previous = {("a", "a3-highgpu-8g"): 30.5, ("b", "other"): 10.0, ("z", "gone"): 1.0}
    flags = flag_rows(rows, previous)
    assert [(f.row.offer.region, f.low) for f in flags] == [("a", True), ("b", False)]
    assert flags[0].reason == "was 30.5 in the catalog it replaces (0.33x)"
    assert _kept(rows, previous) == ["b"]
    assert flag_rows(rows, {("a", "a3-highgpu-8g"): 29.9}) == []  # under 3x: no flag
