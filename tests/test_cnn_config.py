"""Run configuration: validation with the field named, YAML files, flags over files."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from cherrypick.workloads.cnn.config import TrainConfig, add_config_arguments, config_from_args

from cherrypick.errors import InputError, ValidationError


def _parse(argv: list[str]) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"iterations": 5, "warmup": 5}, "iterations", "must exceed warmup"),
        ({"momentum": 1.0}, "momentum", "[0, 1)"),
        ({"lr": 0}, "lr", "positive"),
        ({"workers": -1}, "workers", ">= 0"),
        ({"channels_last": "yes"}, "channels_last", "expected bool"),
        ({"batch_size": True}, "batch_size", "expected int"),
        ({"device": "tpu"}, "device", "not one of auto, cpu, cuda"),
    ],
)
def test_invalid_values_name_the_field(values: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TrainConfig.from_mapping(values, source="run.yaml")
    assert caught.value.field == field and message in str(caught.value)
    assert str(caught.value).startswith("run.yaml")


def test_ints_are_fine_for_floats_and_dashes_for_underscores() -> None:
    config = TrainConfig.from_mapping({"epochs": 2, "batch-size": 8})
    assert config.epochs == 2.0 and isinstance(config.epochs, float) and config.batch_size == 8


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model: vgg11\nbatch_size: 8\nchannels_last: true\niterations: null\n")
    config = _parse(["--config", str(path), "--batch-size", "4", "--no-profile"])
    assert (config.model, config.batch_size, config.channels_last) == ("vgg11", 4, True)
    assert config.iterations is None and config.profile is False


def test_broken_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read config"):
        TrainConfig.from_file(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ValidationError, match="expected a mapping"):
        TrainConfig.from_file(tmp_path / "list.yaml")


def test_job_length_from_epochs_and_dataset() -> None:
    config = TrainConfig(batch_size=32, epochs=1.5, dataset_size=1000, iterations=None)
    assert config.job_iterations(config.samples_per_epoch() or 0, world_size=2) == 23  # 1.5 x 15
    assert config.run_iterations(1000, 2) == config.warmup + 1 + 23
    assert TrainConfig().samples_per_epoch() == 1_281_167
    assert TrainConfig(data="jpeg", classes=10, images_per_class=4).samples_per_epoch() == 40
    assert TrainConfig(data="/some/folder").samples_per_epoch() is None
