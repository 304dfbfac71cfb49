"""Saved activations: the analytic per-op rules against what autograd really keeps (CPU).

At 64 px and batch 2 every model keeps the layers and ops it has at 224 px, so the same rules
apply; the one CPU difference is dropout, whose noise tensor (input dtype) is larger than the
bool mask a GPU keeps, a few percent of AlexNet's small total.
"""

from __future__ import annotations

import pytest
from cherrypick.workloads.cnn.arch import MODELS
from cherrypick.workloads.cnn.config import TrainConfig
from cherrypick.workloads.cnn.memory import measure_saved_bytes, predicted_bytes_per_sample
from cherrypick.workloads.cnn.workload import CNNWorkload

from cherrypick.errors import InputError
from cherrypick.perfmodel.predict import memory_breakdown, memory_bytes

TOLERANCE = 0.15


def _config(model: str, precision: str) -> TrainConfig:
    return TrainConfig(model=model, image_size=64, batch_size=2, precision=precision)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("model", MODELS)
def test_predicted_saved_activations_match_the_measured(model: str, precision: str) -> None:
    config = _config(model, precision)
    measured = measure_saved_bytes(config).activation_bytes_per_sample
    predicted = predicted_bytes_per_sample(config)
    assert predicted == pytest.approx(measured, rel=TOLERANCE)


@pytest.mark.parametrize("model", MODELS)
def test_fp16_saves_what_bf16_saves(model: str) -> None:
    # One CUDA autocast op list for both half types, 2 bytes each: the same prediction.
    fp16, bf16 = (predicted_bytes_per_sample(_config(model, p)) for p in ("fp16", "bf16"))
    assert fp16 == bf16
    assert fp16 < predicted_bytes_per_sample(_config(model, "fp32"))


def test_autocast_keeps_half_precision_copies_of_the_conv_and_linear_weights() -> None:
    saved = measure_saved_bytes(_config("resnet18", "bf16"))
    # Every conv and linear weight once, 2 bytes each; batch norm runs on its fp32 weights
    # (9,600) and addmm's backward does not need the fc bias (1,000).
    cast_weights = 11_689_512 - 9_600 - 1_000
    assert saved.weight_copy_bytes == 2 * cast_weights
    assert measure_saved_bytes(_config("resnet18", "fp32")).weight_copy_bytes == 0


def test_fp16_is_measured_only_on_cuda() -> None:
    with pytest.raises(InputError, match="fp16 is measured on CUDA only"):
        measure_saved_bytes(_config("alexnet", "fp16"))


def test_resnet50_at_batch_256_in_fp16_is_not_ruled_out_on_16_gb_gpus() -> None:
    # The example: 22.5 GiB predicted before, so T4, V100-16GB and A10G were never tried.
    params = {"model": "resnet50", "batch_size": 256, "precision": "fp16"}
    profile = CNNWorkload(params).simulation_profile()
    items = memory_breakdown(profile)
    assert sum(items.values()) == memory_bytes(profile)
    assert items["activations"] == pytest.approx(256 * 43.8e6, rel=0.01)
    assert memory_bytes(profile) < 15 * 2**30  # what a 16 GB T4 or V100 leaves to CUDA
