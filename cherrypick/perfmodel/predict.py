"""The performance model: a training job's iteration and run time on one candidate, noise-free.

Each layer's forward and backward run at the roofline of the GPU (the slower of compute at an
achievable fraction of peak and memory traffic at an achievable fraction of bandwidth, the
traffic larger where tensor cores work on NCHW tensors) plus a kernel launch cost. Around the
layers: data loading on the vCPUs (overlapped with the GPU), the host-to-device copy over PCIe,
the SGD step, and DDP's all-reduce overlapped with backward
(``cherrypick.perfmodel.communication``). A measured profile replaces the roofline per layer when
given (``cherrypick.perfmodel.calibrate``). Sources of the constants are named where they are
defined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cherrypick.catalog.gpus import GpuSpec
from cherrypick.perfmodel.communication import exposed_communication_s, intra_node_gbs
from cherrypick.providers.base import Candidate
from cherrypick.workloads.base import BREAKDOWN_KEYS, JobProfile

__all__ = [
    "COMPUTE_EFFICIENCY",
    "JPEG_IMAGES_PER_S_PER_VCPU",
    "MEMORY_EFFICIENCY",
    "NCHW_TENSOR_CORE_TRAFFIC",
    "LayerTime",
    "Prediction",
    "compute_tflops",
    "memory_breakdown",
    "memory_bytes",
    "on_tensor_cores",
    "pcie_gbs",
    "predict",
    "roofline_s",
    "traffic_factor",
]

#: Achievable fractions of peak FLOP/s and of peak memory bandwidth: PALEO's (ICLR 2017)
#: "platform percent of peak" defaults, as configs/catalog-facts/gpu-specs.md quotes them.
COMPUTE_EFFICIENCY = 0.62
MEMORY_EFFICIENCY = 0.72
#: Tensor cores are fed far below their peak by convolutions of a whole network: NVIDIA's
#: published ResNet-50 AMP training rates (V100 ~1,400, A100 ~2,700 images/s, at ~24.6 GFLOP
#: per image for forward + backward) are 20-30 % of the tensor peak, so on top of the PALEO
#: fraction we take half of the tensor peak (documented model choice, not a measurement). Those
#: are channels-last runs; against NVIDIA's NHWC PyTorch figures it is 1-15% optimistic.
TENSOR_CORE_FRACTION = 0.5
#: cuDNN's tensor-core convolutions work on NHWC tensors, so in PyTorch's default NCHW layout
#: each one's input and output are transposed around it, more passes over the activations that
#: the streamed bytes of the layer do not count (MosaicML Composer's channels-last method card:
#: ResNet-50 about 30% faster in NHWC on V100 and A100). Evidence for the factor: NVIDIA's own
#: ResNet-50 (DeepLearningExamples, batch 256, AMP) trains at 1,200 images/s on V100 in NHWC
#: (NVIDIA's README) and 833 in NCHW (Lambda's benchmark), x1.44; traffic x1.75 gives the model
#: x1.43 there (x1.47 on A100 80GB, where the same pair of sources measures x1.56). TF32 pays it
#: too: Lambda's TF32 ResNet-50 goes from 1,066 images/s on A100 80GB to 1,753 on H100, x1.64 as
#: memory bandwidth (x1.64), not as TF32 peak (x3.2). docs/perfmodel.md has the comparison.
NCHW_TENSOR_CORE_TRAFFIC = 1.75
#: Each named layer launches several kernels per pass (conv, norm, activation); a few
#: microseconds each is the usual CUDA launch cost, so 30 us per layer and pass.
LAYER_OVERHEAD_S = 30e-6
#: Decode + random-resized-crop + flip + normalise of the workload's generated 256 px JPEGs
#: (``cherrypick.workloads.cnn.data.ImageFolder``), one process: 403 and 678 images/s measured on
#: one AMD EPYC core of the development machine (two runs of 400 images). We take the lower
#: figure: cloud vCPUs are hyper-threads, and batching and worker IPC cost extra.
JPEG_IMAGES_PER_S_PER_VCPU = 400.0
#: Effective pinned host-to-device bandwidth of a x16 link by PCIe generation, GB/s (about 75 % of
#: the 16/32/64 GB/s raw rates in gpu-specs.md).
_PCIE_GBS = {3: 12.0, 4: 24.0, 5: 48.0}
#: SGD with momentum reads weights, gradients and momentum and writes weights and momentum.
_OPTIMIZER_BYTES_PER_PARAM = 5 * 4
#: Peak memory, item by item (:func:`memory_breakdown`). Parameters stay fp32 under autocast,
#: and so do their gradients and the momentum buffer ``torch.optim.SGD`` keeps per parameter
#: when momentum is set (the workload trains with momentum; the profile does not say, so always).
_FP32_BYTES = 4
#: autocast caches one low-precision cast of each conv and linear weight per forward, and
#: backward keeps it until it has used it (``aten/src/ATen/autocast_mode.cpp``, ``cached_cast``;
#: measured by ``cherrypick.workloads.cnn.memory``). Batch norm's few weights are not cast.
_HALF_BYTES = 2
_HALF_PRECISIONS = ("fp16", "bf16")
#: The CUDA context (driver state and the kernels loaded so far): about 300-400 MB per process
#: since CUDA 11.7 loads kernels lazily, over 1 GB before, as PyTorch's maintainers measure it
#: (pytorch/pytorch#107667 and #109888). The upper figure.
_CUDA_CONTEXT_BYTES = 400 * 2**20
#: Library workspaces. cuBLASLt's is 32 MiB on Hopper, 1-4 MiB before (PyTorch's
#: ``aten/src/ATen/cuda/CUDABlas.cpp``, pytorch/pytorch#120925). cuDNN's depends on the
#: convolution algorithm and bends to the memory left: when it cannot be allocated PyTorch halves
#: it and drops the plans that need more (``aten/src/ATen/native/cudnn/Conv_v8.cpp``), or tries
#: the next algorithm (``Conv_v7.cpp``). So a floor, 256 MiB for cuDNN: our assumption.
_WORKSPACE_BYTES = (256 + 32) * 2**20
#: The caching allocator rounds each block up (to 512 bytes, and requests over 10 MiB to 2 MiB)
#: and cannot always reuse a freed block for a request of another size, so it reserves more than
#: tensors occupy (``c10/cuda/CUDACachingAllocator.cpp``; PyTorch's "CUDA semantics: memory
#: management" on reserved against allocated memory). 10 % of the allocated bytes: our
#: assumption, for the GPU script to replace with ``max_memory_reserved / max_memory_allocated``.
_ALLOCATOR_SLACK = 0.10
#: Process start, model build and data-loader start before the first iteration.
STARTUP_S = 60.0


@dataclass(frozen=True)
class LayerTime:
    """One layer's predicted forward and backward seconds per iteration."""

    name: str
    forward_s: float
    backward_s: float


@dataclass(frozen=True)
class Prediction:
    """What the model predicts for one candidate; ``breakdown_s`` adds up to ``iteration_s``.

    ``data`` and ``communication`` are the parts not hidden behind the GPU's work.
    """

    iteration_s: float
    runtime_s: float
    oom: bool
    breakdown_s: Mapping[str, float]
    layers: tuple[LayerTime, ...]
    memory_bytes: float
    memory_limit_bytes: float
    global_batch: int
    iterations: int

    @property
    def throughput_images_s(self) -> float:
        return self.global_batch / self.iteration_s


def compute_tflops(spec: GpuSpec, precision: str) -> float:
    """Achievable TFLOP/s: tensor cores for half precision (TF32 for fp32, PyTorch's cuDNN
    default) where the GPU has them, else the FP32 units."""
    peak = {"fp32": spec.tf32_tflops, "fp16": spec.fp16_tflops, "bf16": spec.bf16_tflops}
    tensor = peak.get(precision)
    if tensor is None or tensor <= spec.fp32_tflops:
        return max(tensor or 0.0, spec.fp32_tflops) * COMPUTE_EFFICIENCY
    return max(tensor * TENSOR_CORE_FRACTION, spec.fp32_tflops) * COMPUTE_EFFICIENCY


def on_tensor_cores(spec: GpuSpec, precision: str) -> bool:
    """Whether convolutions at ``precision`` run on tensor cores: TF32 for fp32 (Ampere on,
    PyTorch's cuDNN default), fp16 and bf16 where the datasheet has them. Volta and Turing list
    no TF32 but fp16 at 8x their FP32 rate; P100's fp16 at 2x is its FP32 units on pairs."""
    rates = {"fp32": spec.tf32_tflops, "fp16": spec.fp16_tflops, "bf16": spec.bf16_tflops}
    rate = rates.get(precision)
    return rate is not None and (spec.tf32_tflops is not None or rate >= 4 * spec.fp32_tflops)


def traffic_factor(profile: JobProfile, spec: GpuSpec) -> float:
    """Memory traffic of the layers over their streamed bytes: the NCHW transposes around
    tensor-core convolutions (:data:`NCHW_TENSOR_CORE_TRAFFIC`), none in channels-last."""
    if profile.channels_last or not on_tensor_cores(spec, profile.precision):
        return 1.0
    return NCHW_TENSOR_CORE_TRAFFIC


def roofline_s(flops: float, traffic_bytes: float, spec: GpuSpec, precision: str) -> float:
    """Seconds for work bound by whichever of compute and memory traffic is slower."""
    compute = flops / (compute_tflops(spec, precision) * 1e12)
    memory = traffic_bytes / (spec.memory_bandwidth_gbs * MEMORY_EFFICIENCY * 1e9)
    return max(compute, memory)


def roofline_layers(profile: JobProfile, spec: GpuSpec) -> tuple[LayerTime, ...]:
    """Per-layer times from FLOPs and bytes; bytes split by FLOPs share (backward moves more)."""
    factor = traffic_factor(profile, spec)
    rows = []
    for layer in profile.layers:
        flops = layer.forward_flops + layer.backward_flops
        fwd_share = layer.forward_flops / flops if flops else 1 / 3
        traffic = layer.bytes * factor
        fwd = roofline_s(layer.forward_flops, traffic * fwd_share, spec, profile.precision)
        bwd = roofline_s(layer.backward_flops, traffic * (1 - fwd_share), spec, profile.precision)
        rows.append(LayerTime(layer.name, fwd + LAYER_OVERHEAD_S, bwd + LAYER_OVERHEAD_S))
    return tuple(rows)


def pcie_gbs(spec: GpuSpec) -> float:
    return _PCIE_GBS.get(spec.pcie_gen, _PCIE_GBS[3])


def memory_bytes(profile: JobProfile) -> float:
    """Peak GPU memory of one process, bytes: the sum of :func:`memory_breakdown`."""
    return sum(memory_breakdown(profile).values())


def memory_breakdown(profile: JobProfile) -> dict[str, float]:
    """Peak GPU memory of one process, item by item (bytes); sources at the constants.

    The peak is at the start of backward: every saved activation is held, and gradients appear
    as backward frees activations, so counting all of both over-estimates a little (a CNN's
    gradients are 0.05-0.5 GB, its activations at a useful batch several GB). The profile's
    activation bytes are those autograd saves, at the run's precision. Under autocast the loop
    still holds the fp32 input batch beside the low-precision copy the first convolution saves;
    in fp32 that convolution saves the batch itself, already counted in the activations.
    """
    params = profile.parameter_count
    half = profile.precision in _HALF_PRECISIONS
    allocated = {
        "weights": params * _FP32_BYTES,
        "gradients": params * _FP32_BYTES,
        "momentum": params * _FP32_BYTES,
        "weight_copies": params * _HALF_BYTES if half else 0,
        "activations": profile.activation_bytes_per_sample * profile.batch_size,
        "input_batch": profile.input_bytes_per_sample * profile.batch_size if half else 0,
        "workspaces": _WORKSPACE_BYTES,
    }
    slack = _ALLOCATOR_SLACK * sum(allocated.values())
    return {**allocated, "allocator_slack": slack, "cuda_context": _CUDA_CONTEXT_BYTES}


def job_iterations(profile: JobProfile, total_gpus: int) -> int:
    """As ``TrainConfig.job_iterations``: the last incomplete global batch is dropped."""
    per_epoch = max(1, profile.samples_per_epoch // (profile.batch_size * total_gpus))
    return math.ceil(profile.epochs * per_epoch)


def data_s(profile: JobProfile, candidate: Candidate) -> float:
    """Seconds the node's vCPUs need to prepare one batch for every GPU on it."""
    if profile.data == "synthetic":
        return 0.0
    per_node = profile.batch_size * max(1, candidate.offering.gpus_per_node)
    return per_node / (JPEG_IMAGES_PER_S_PER_VCPU * candidate.offering.vcpus)


@dataclass(frozen=True)
class Parts:
    """Per-iteration seconds of the GPU-side phases, before data overlap is applied."""

    layers: tuple[LayerTime, ...]
    h2d: float
    optimizer: float
    unattributed: float


def modelled_parts(profile: JobProfile, spec: GpuSpec) -> Parts:
    """The phases around the layers, from the datasheet."""
    h2d = profile.batch_size * profile.input_bytes_per_sample / (pcie_gbs(spec) * 1e9)
    optimizer = roofline_s(
        0.0, profile.parameter_count * _OPTIMIZER_BYTES_PER_PARAM, spec, profile.precision
    )
    return Parts(roofline_layers(profile, spec), h2d, optimizer + LAYER_OVERHEAD_S, 0.0)


def predict(
    candidate: Candidate, profile: JobProfile, spec: GpuSpec, parts: Parts | None = None
) -> Prediction:
    """The noise-free prediction; ``parts`` replaces the datasheet estimate (calibration)."""
    gpu = parts if parts is not None else modelled_parts(profile, spec)
    forward = sum(layer.forward_s for layer in gpu.layers)
    backward = sum(layer.backward_s for layer in gpu.layers)
    comm = exposed_communication_s(
        [layer.backward_s for layer in reversed(gpu.layers)],
        [4.0 * layer.params for layer in reversed(profile.layers)],
        candidate,
        intra_node_gbs(candidate, spec, pcie_gbs(spec)),
    )
    busy = gpu.h2d + forward + backward + gpu.optimizer + comm + gpu.unattributed
    waiting = max(0.0, data_s(profile, candidate) - busy)
    breakdown = _breakdown(waiting, gpu, forward, backward, comm)
    iteration = sum(breakdown.values())
    iterations = job_iterations(profile, candidate.total_gpus)
    need = memory_bytes(profile)
    limit = candidate.offering.gpu_memory_gib * 2**30
    return Prediction(
        iteration_s=iteration,
        runtime_s=STARTUP_S + iterations * iteration,
        oom=need > limit,
        breakdown_s=breakdown,
        layers=gpu.layers,
        memory_bytes=need,
        memory_limit_bytes=limit,
        global_batch=profile.batch_size * candidate.total_gpus,
        iterations=iterations,
    )


def _breakdown(
    waiting: float, gpu: Parts, forward: float, backward: float, comm: float
) -> dict[str, float]:
    values: Sequence[float] = (waiting, gpu.h2d, forward, backward, gpu.optimizer, comm)
    return {**dict(zip(BREAKDOWN_KEYS, values, strict=False)), "unattributed": gpu.unattributed}
