"""The search file's ``clouds`` section: per-cloud settings reach the provider, and a cloud set to
spot is searched at the catalog's spot prices."""

from __future__ import annotations

from typing import Any

import pytest

from cherrypick.errors import ValidationError
from cherrypick.searching.setup import build_space, cloud_options
from cherrypick.spec import parse_spec


def spec(**extra: Any) -> Any:
    data = {
        "workload": {"name": "cnn", "params": {"model": "alexnet"}},
        "filters": {"providers": ["aws", "gcp"], "gpus": ["T4"], "max_nodes": 1},
        **extra,
    }
    return parse_spec(data)


def test_cloud_settings_reach_the_provider_as_its_options() -> None:
    s = spec(clouds={"aws": {"ssh_cidr": "198.51.100.0/24", "image": "ami-0abc"}})
    options = cloud_options(s, "aws")
    assert options.ssh_cidr == "198.51.100.0/24" and options.image == "ami-0abc"
    assert cloud_options(s, "gcp").image is None and not cloud_options(s, "gcp").spot


def test_an_unknown_cloud_or_setting_names_its_field() -> None:
    with pytest.raises(ValidationError, match="clouds"):
        spec(clouds={"ibm": {}})
    with pytest.raises(ValidationError, match="clouds.aws.zone"):
        spec(clouds={"aws": {"zone": "us-east-1a"}})


def test_a_spot_cloud_is_priced_at_spot_and_keeps_only_offerings_with_a_spot_price() -> None:
    on_demand = {c.offering.key: c.offering for c in build_space(spec()).catalog}
    spot = {
        c.offering.key: c.offering
        for c in build_space(spec(clouds={"aws": {"spot": True}})).catalog
    }
    aws = [k for k in on_demand if k.startswith("aws/")]
    assert aws and all(k.startswith("gcp/") or k in aws for k in spot)
    for key, offering in spot.items():
        before = on_demand[key]
        if offering.provider == "aws":
            assert before.spot_price_per_hour is not None
            assert offering.price_per_hour == before.spot_price_per_hour < before.price_per_hour
            assert offering.extra["spot"] is True
        else:
            assert offering.price_per_hour == before.price_per_hour
            assert "spot" not in offering.extra
    without = [k for k in aws if on_demand[k].spot_price_per_hour is None]
    assert not set(without) & set(spot)
