"""``python -m cherrypick.perfmodel.published``: the model against published training throughput.

Each :class:`Point` is one measured single-GPU figure (images/s) with its source and setup. The
comparison builds the CNN workload's profile for the same model, per-GPU batch, precision and
layout, predicts it on one node with that GPU, and prints both with the error. No source copies
fp32 images from the host in the iteration (batches are made on the GPU, or NVIDIA's loader
copies uint8 pixels ahead of time), so the model's host-to-device copy is left out of the
predicted iteration. ``docs/perfmodel.md`` gives the selection rule and explains the points
beyond 25%.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cherrypick.catalog.gpus import GpuSpec
from cherrypick.errors import CherrypickError
from cherrypick.providers.base import Candidate, Offering

if TYPE_CHECKING:
    from cherrypick.workloads.base import JobProfile

__all__ = [
    "POINTS",
    "SOURCES",
    "Point",
    "Row",
    "Source",
    "compare",
    "main",
    "mean_abs_error",
    "table",
]


@dataclass(frozen=True)
class Source:
    """Where figures were published (``files`` within ``url``) and how they were measured."""

    name: str
    url: str
    files: str
    setup: str


@dataclass(frozen=True)
class Point:
    """One published single-node training throughput. ``precision`` fp32 is TF32 on GPUs that
    have it (the frameworks' default for convolutions), fp16 is automatic mixed precision.
    ``host_vcpus`` is set where the source decoded real images: the CPU threads of its host."""

    gpu: str
    model: str
    precision: str
    batch_size: int
    images_per_s: float
    source: Source
    channels_last: bool = False
    host_vcpus: int | None = None
    gpus: int = 1


@dataclass(frozen=True)
class Row:
    point: Point
    predicted_images_per_s: float
    oom: bool

    @property
    def error(self) -> float:
        """Predicted over published, minus one (+0.10: the model is 10% optimistic)."""
        return self.predicted_images_per_s / self.point.images_per_s - 1


SOURCES = {
    "lambda-pytorch": Source(
        "Lambda PyTorch benchmark",
        "https://github.com/lambdal/deeplearning-benchmark",
        "pytorch/pytorch-train-throughput-fp16.csv and -fp32.csv; batch sizes in"
        " pytorch/pytorch-train-bs-*.csv and pytorch/scripts/config_v1/",
        "PyTorch in an NGC container running NVIDIA's DeepLearningExamples ResNet-50 v1.5;"
        " --data-backend synthetic (batches made on the GPU); NCHW (main.py's default"
        " --memory-format); --amp for mixed precision",
    ),
    "nvidia-dle-pytorch": Source(
        "NVIDIA DLE PyTorch 21.03",
        "https://github.com/NVIDIA/DeepLearningExamples",
        "PyTorch/Classification/ConvNets/resnet50v1.5/README.md, training performance"
        " (pytorch-21.03 NGC container); batch sizes and memory formats in ConvNets/configs.yml",
        "PyTorch on DGX A100 (2x EPYC 7742, 256 threads) and DGX-1 (2x Xeon E5-2698 v4,"
        " 80 threads); real ImageNet through the DeepLearningExamples loader; AMP runs NHWC"
        " (configs.yml: memory_format nhwc), TF32 and FP32 runs NCHW",
    ),
    "lambda-tensorflow": Source(
        "Lambda TensorFlow benchmark",
        "https://github.com/LambdaColdStorage/lambda-tensorflow-benchmark",
        "tf-train-throughput-fp16.csv and -fp32.csv; tf-train-bs-*.csv",
        "TensorFlow tf_cnn_benchmarks (V100-SXM3-32GB: TensorFlow 2.2), synthetic data made on"
        " the GPU (tools/log2csv.py's default --data syn), NCHW; used for VGG-16 and AlexNet"
        " only, which have no PyTorch figures here",
    ),
}

_DGX_A100_VCPUS = 256
_DGX1_VCPUS = 80


def _points() -> tuple[Point, ...]:
    lam, dle, tf = (
        SOURCES[k] for k in ("lambda-pytorch", "nvidia-dle-pytorch", "lambda-tensorflow")
    )
    a100, v100 = _DGX_A100_VCPUS, _DGX1_VCPUS  # the hosts that decoded NVIDIA's images
    return (
        Point("H100", "resnet50", "fp16", 1280, 2616, lam),
        Point("H100", "resnet50", "fp32", 640, 1753, lam),
        Point("A100-80GB", "resnet50", "fp16", 1280, 1582, lam),
        Point("A100-80GB", "resnet50", "fp32", 640, 1066, lam),
        Point("A100", "resnet50", "fp16", 720, 1396, lam),
        Point("A100", "resnet50", "fp32", 360, 882, lam),
        Point("A10", "resnet50", "fp16", 448, 638, lam),
        Point("A10", "resnet50", "fp32", 224, 349, lam),
        Point("V100", "resnet50", "fp16", 256, 833, lam),
        Point("V100", "resnet50", "fp32", 128, 369, lam),
        Point("A100-80GB", "resnet50", "fp16", 256, 2470, dle, True, a100),
        Point("A100-80GB", "resnet50", "fp32", 256, 938, dle, host_vcpus=a100),
        Point("V100", "resnet50", "fp16", 256, 1200, dle, True, v100),
        Point("V100", "resnet50", "fp32", 112, 367, dle, host_vcpus=v100),
        Point("V100-32GB", "resnet50", "fp16", 256, 1156, dle, True, v100),
        Point("V100-32GB", "resnet50", "fp32", 112, 356, dle, host_vcpus=v100),
        Point("A100", "vgg16", "fp16", 448, 1190, tf),
        Point("A100", "vgg16", "fp32", 224, 504, tf),
        Point("A100", "alexnet", "fp16", 3584, 16487, tf),
        Point("A100", "alexnet", "fp32", 1792, 10187, tf),
        Point("V100-32GB", "vgg16", "fp16", 384, 456, tf),
        Point("V100-32GB", "vgg16", "fp32", 192, 249, tf),
        Point("V100-32GB", "alexnet", "fp16", 3072, 9319, tf),
        Point("V100-32GB", "alexnet", "fp32", 1536, 5132, tf),
    )


#: GPU names as in configs/gpus.yaml. Lambda's "A100 40GB PCIe" is the "A100" key (the same peak
#: figures and 1,555 GB/s as the SXM part). The V100 keys carry SXM2 figures: DGX-1's V100s are
#: SXM2, Lambda's TensorFlow rows ran on DGX-2's SXM3 part, its cloud rows do not say.
POINTS = _points()


def compare(
    points: Sequence[Point] = POINTS, gpus: Mapping[str, GpuSpec] | None = None
) -> list[Row]:
    """The model's prediction for every point (see the module docstring for the setup)."""
    from cherrypick.perfmodel.model import PerformanceModel

    model = PerformanceModel(gpus)
    rows = []
    for point in points:
        spec = model.gpus[point.gpu]
        candidate = Candidate(_offering(point, spec))
        prediction = model.predict(candidate, _profile(point))
        iteration = prediction.iteration_s - prediction.breakdown_s["h2d"]
        rows.append(Row(point, prediction.global_batch / iteration, prediction.oom))
    return rows


def mean_abs_error(rows: Sequence[Row]) -> float:
    return sum(abs(row.error) for row in rows) / len(rows)


def _profile(point: Point) -> JobProfile:
    from cherrypick.workloads.cnn.workload import CNNWorkload

    params: dict[str, object] = {
        "model": point.model,
        "batch_size": point.batch_size,
        "precision": point.precision,
        "channels_last": point.channels_last,
    }
    if point.host_vcpus is not None:
        params["data"] = "jpeg"
    return CNNWorkload(params).simulation_profile()


def _offering(point: Point, spec: GpuSpec) -> Offering:
    return Offering(
        provider="published",
        region="-",
        instance_type=f"{point.gpus}x{point.gpu}",
        vcpus=point.host_vcpus or 8,
        memory_gib=64.0 * point.gpus,
        gpu=point.gpu,
        gpus_per_node=point.gpus,
        gpu_memory_gib=spec.memory_gib,
        interconnect="nvlink" if spec.nvlink_gbs else "pcie",
        price_per_hour=0.0,
    )


def table(rows: Sequence[Row]) -> list[str]:
    """The comparison as text lines, the mean absolute error last."""
    lines = [
        f"{'gpu':<10} {'model':<9} {'prec':<5} {'layout':<6} {'batch':>5} {'published':>9}"
        f" {'predicted':>9} {'error':>6}  source"
    ]
    for row in rows:
        p = row.point
        layout = "NHWC" if p.channels_last else "NCHW"
        note = " (out of memory in the model)" if row.oom else ""
        lines.append(
            f"{p.gpu:<10} {p.model:<9} {p.precision:<5} {layout:<6} {p.batch_size:>5}"
            f" {p.images_per_s:>9.0f} {row.predicted_images_per_s:>9.0f} {row.error:>+6.0%}"
            f"  {p.source.name}{note}"
        )
    lines.append(f"mean absolute error: {mean_abs_error(rows):.1%} over {len(rows)} points")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cherrypick.perfmodel.published", description=__doc__
    )
    parser.parse_args(argv)
    try:
        lines = table(compare())
    except CherrypickError as exc:
        print(f"error: {exc}")
        return exc.exit_code
    sources = [f"  {src.name}: {src.url} ({src.files})" for src in SOURCES.values()]
    print("\n".join([*lines, "", "sources (setups in docs/perfmodel.md):", *sources]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
