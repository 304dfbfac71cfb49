"""The performance model: rooflines by hand, the GPU ranking, scaling, memory and calibration."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cherrypick.providers.base import Candidate, Offering
from cherrypick.workloads.base import JobProfile
from cherrypick.workloads.cnn.workload import CNNWorkload

from cherrypick.catalog import load_gpus
from cherrypick.errors import InputError
from cherrypick.perfmodel import PerformanceModel
from cherrypick.perfmodel.calibrate import gpu_key
from cherrypick.perfmodel.communication import buckets, ring_allreduce_s
from cherrypick.perfmodel.predict import (
    COMPUTE_EFFICIENCY,
    MEMORY_EFFICIENCY,
    NCHW_TENSOR_CORE_TRAFFIC,
    TENSOR_CORE_FRACTION,
    compute_tflops,
    predict,
    roofline_s,
    traffic_factor,
)

GPUS = load_gpus()


def offering(
    gpu: str, gpus: int = 1, *, interconnect: str = "pcie", gbps: float = 25.0
) -> Offering:
    return Offering(
        "aws", "us-east-1", f"{gpu}x{gpus}", 8 * gpus, 64.0 * gpus, gpu, gpus,
        GPUS[gpu].memory_gib, interconnect, 1.0 * gpus, extra={"network_gbps": gbps},
    )  # fmt: skip


def profile(model: str = "resnet50", **params: Any) -> JobProfile:
    settings = {"model": model, "batch_size": 128, "precision": "fp16", **params}
    return CNNWorkload(settings).simulation_profile()


def iteration_s(gpu: str, job: JobProfile, gpus: int = 1, nodes: int = 1, **kw: Any) -> float:
    candidate = Candidate(offering(gpu, gpus, **kw), nodes)
    return predict(candidate, job, GPUS[gpu]).iteration_s


def test_roofline_matches_hand_computed_numbers() -> None:
    v100 = GPUS["V100"]
    # compute-bound: 1 TFLOP on V100 fp32 (no TF32) at 15.7 TFLOP/s x 0.62
    assert roofline_s(1e12, 1e6, v100, "fp32") == pytest.approx(1 / (15.7 * 0.62))
    # memory-bound: 9 GB at 900 GB/s x 0.72
    assert roofline_s(1e6, 9e9, v100, "fp32") == pytest.approx(9e9 / (900e9 * 0.72))
    # fp16 uses the tensor cores at the documented fraction of their peak
    assert compute_tflops(v100, "fp16") == pytest.approx(
        125 * TENSOR_CORE_FRACTION * COMPUTE_EFFICIENCY
    )
    # bf16 on a GPU without bf16 units falls back to its FP32 rate
    assert compute_tflops(GPUS["T4"], "bf16") == pytest.approx(8.1 * COMPUTE_EFFICIENCY)
    assert MEMORY_EFFICIENCY == 0.72


def test_ring_allreduce_formula_and_buckets() -> None:
    # 4 ranks, 100 MB at 10 GB/s (0.01 s), 1 us latency: 2*3/4 * 0.01 s + 2*3 * 1 us
    assert ring_allreduce_s(4, 100e6, 10.0, 1e-6) == pytest.approx(0.015 + 6e-6)
    assert ring_allreduce_s(1, 100e6, 10.0, 1e-6) == 0.0
    mb = 2**20
    assert buckets([1.0, 1.0, 1.0], [20 * mb, 10 * mb, 1 * mb]) == [(2.0, 30 * mb), (3.0, 1 * mb)]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("batch", [64, 128, 256])
def test_resnet50_ranking_matches_public_benchmarks(batch: int, channels_last: bool) -> None:
    job = profile(batch_size=batch, channels_last=channels_last)
    t = {gpu: iteration_s(gpu, job) for gpu in ("H100", "A100", "V100", "A10G", "L4", "T4")}
    assert t["H100"] < t["A100"] < t["V100"] < t["A10G"] < min(t["L4"], t["T4"])
    # AMP ResNet-50 is bound by memory bandwidth, ~300 GB/s on both (docs/perfmodel.md)
    assert max(t["L4"], t["T4"]) / min(t["L4"], t["T4"]) < 1.1


def test_nchw_pays_for_transposes_on_tensor_cores_only() -> None:
    nchw, nhwc = profile(), profile(channels_last=True)
    assert traffic_factor(nchw, GPUS["A100"]) == NCHW_TENSOR_CORE_TRAFFIC
    assert traffic_factor(nhwc, GPUS["A100"]) == 1.0
    assert traffic_factor(profile(precision="fp32"), GPUS["A100"]) == NCHW_TENSOR_CORE_TRAFFIC
    assert traffic_factor(profile(precision="fp32"), GPUS["V100"]) == 1.0  # no TF32
    assert traffic_factor(nchw, GPUS["P100"]) == 1.0  # fp16 on the FP32 units
    assert iteration_s("V100", nhwc) < iteration_s("V100", nchw)


def test_more_gpus_are_faster_with_diminishing_returns() -> None:
    job = profile()
    runtime = {
        n: predict(Candidate(offering("V100", n, interconnect="nvlink")), job, GPUS["V100"])
        for n in (1, 2, 4, 8)
    }
    speedup = {n: runtime[1].runtime_s / runtime[n].runtime_s for n in runtime}
    assert 1 < speedup[2] < speedup[4] < speedup[8] < 8
    assert speedup[8] / 8 < speedup[2] / 2  # efficiency falls as GPUs are added


def test_slow_network_hurts_vgg_more_than_resnet() -> None:
    def multi_node_efficiency(model: str) -> float:
        job = profile(model)
        one = iteration_s("A100", job)
        return one / iteration_s("A100", job, nodes=4, gbps=10.0)

    assert multi_node_efficiency("vgg16") < multi_node_efficiency("resnet50") < 1.0


def test_nvlink_beats_pcie_within_a_node() -> None:
    job = profile("vgg16")
    assert iteration_s("V100", job, 8, interconnect="nvlink") < iteration_s("V100", job, 8)


def test_huge_batch_on_small_gpu_is_out_of_memory() -> None:
    job = profile(batch_size=512, precision="fp32")
    t4 = predict(Candidate(offering("T4")), job, GPUS["T4"])
    h200 = predict(Candidate(offering("H200")), job, GPUS["H200"])
    assert t4.oom and t4.memory_bytes > t4.memory_limit_bytes
    assert not h200.oom


def test_jpeg_data_is_limited_by_vcpus() -> None:
    job = profile(data="jpeg", dataset_size=100_000)
    few = predict(Candidate(dataclasses.replace(offering("H100"), vcpus=2)), job, GPUS["H100"])
    many = predict(Candidate(dataclasses.replace(offering("H100"), vcpus=64)), job, GPUS["H100"])
    assert few.breakdown_s["data"] > 0 and many.breakdown_s["data"] == 0
    assert few.iteration_s > many.iteration_s


def test_breakdown_adds_up_and_runtime_follows_iterations() -> None:
    job = profile(epochs=2.0)
    p = predict(Candidate(offering("A100", 4)), job, GPUS["A100"])
    assert sum(p.breakdown_s.values()) == pytest.approx(p.iteration_s)
    assert p.iterations == 2 * (job.samples_per_epoch // (128 * 4))
    assert p.runtime_s == pytest.approx(60.0 + p.iterations * p.iteration_s)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("Tesla V100-SXM2-32GB", "V100-32GB"),
        ("Tesla T4", "T4"),
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA H100 NVL", "H100-NVL"),
    ],
)
def test_device_names_map_to_gpu_keys(name: str, key: str) -> None:
    assert gpu_key(name, GPUS) == key


def test_unknown_device_lists_known_gpus() -> None:
    with pytest.raises(InputError, match="known: .*H100"):
        gpu_key("Radeon Instinct MI300X", GPUS)


def measured(job: JobProfile, device: str) -> dict[str, Any]:
    """A calibration as ``cherrypick profile`` would record it (made-up times)."""
    layers = [
        {"name": layer.name, "forward_ms": 1.0 + i, "backward_ms": 2.0 + 2 * i}
        for i, layer in enumerate(job.layers)
    ]
    return {
        "environment": {"device": "cuda", "device_name": device},
        "config": {"batch_size": job.batch_size, "precision": job.precision},
        "iteration_ms": 500.0,
        "breakdown_ms": {"h2d": 3.0, "optimizer": 2.0, "unattributed": 5.0},
        "layers": layers,
    }


def test_calibration_reproduces_the_measured_gpu_and_scales_to_others() -> None:
    job = profile()
    calibrated = dataclasses.replace(job, calibration=measured(job, "NVIDIA A100-SXM4-40GB"))
    provider = PerformanceModel(GPUS)
    on_a100 = provider.predict(Candidate(offering("A100")), calibrated)
    for i, layer in enumerate(on_a100.layers):
        assert layer.forward_s == pytest.approx((1.0 + i) / 1000)
        assert layer.backward_s == pytest.approx((2.0 + 2 * i) / 1000)
    assert on_a100.breakdown_s["unattributed"] == pytest.approx(0.005)
    on_h100 = provider.predict(Candidate(offering("H100")), calibrated)
    on_t4 = provider.predict(Candidate(offering("T4")), calibrated)
    assert on_h100.iteration_s < on_a100.iteration_s < on_t4.iteration_s
    # each layer's factor lies between the bandwidth and the compute ratio of the two GPUs
    bandwidth = 1555 / 3350
    compute = compute_tflops(GPUS["A100"], "fp16") / compute_tflops(GPUS["H100"], "fp16")
    for a, h in zip(on_a100.layers, on_h100.layers, strict=True):
        ratio = h.backward_s / a.backward_s
        assert min(bandwidth, compute) - 1e-9 <= ratio <= max(bandwidth, compute) + 1e-9


def test_calibration_of_another_model_or_precision_is_refused() -> None:
    job = profile()
    other = measured(profile("resnet18"), "Tesla T4")
    provider = PerformanceModel(GPUS)
    with pytest.raises(InputError, match="not the job's"):
        provider.predict(Candidate(offering("T4")), dataclasses.replace(job, calibration=other))
    fp32 = {**measured(job, "Tesla T4"), "config": {"precision": "fp32"}}
    with pytest.raises(InputError, match="precision|fp32"):
        provider.predict(Candidate(offering("T4")), dataclasses.replace(job, calibration=fp32))
