"""The CNN architectures as pure-Python layer specs, and their analytic costs (no torch here).

One spec serves twice: ``cherrypick.workloads.cnn.models`` builds the torch modules from it, and
:func:`analyze` computes each named layer's output shape, forward and backward FLOPs, bytes moved,
parameters and saved activations, so the simulator can profile ResNet-50 on 224x224 images without
importing torch.

Conventions (the ones ``torch.utils.flop_counter`` uses, which a test checks): a multiply-add is
two FLOPs; only convolutions and matrix products count; the first layer computes no gradient for
its input. Bytes follow a simple streaming model: forward reads the input and the weights and
writes the output; backward reads the output gradient, the saved input and the weights and writes
the input gradient (unless it is not needed) and the weight gradient. Activations take 4 bytes
each in fp32 and 2 in fp16/bf16; weights and their gradients stay fp32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cherrypick.workloads.cnn import _zoo
from cherrypick.workloads.cnn._ops import (
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    LayerSpec,
    Linear,
    MaxPool,
    Op,
    ReLU,
    Residual,
)

from cherrypick.errors import InputError, UnknownNameError

__all__ = [
    "MODELS",
    "Architecture",
    "BatchNorm",
    "Conv",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "LayerAnalysis",
    "LayerSpec",
    "Linear",
    "MaxPool",
    "Op",
    "ReLU",
    "Residual",
    "analyze",
    "architecture",
    "output_shape",
]

Shape = tuple[int, ...]

MODELS = ("alexnet", "vgg11", "vgg16", "resnet18", "resnet50")

_ACT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
_PARAM_BYTES = 4


@dataclass(frozen=True)
class Architecture:
    name: str
    num_classes: int
    image_size: int
    layers: tuple[LayerSpec, ...]

    @property
    def input_shape(self) -> Shape:
        return (3, self.image_size, self.image_size)


@dataclass(frozen=True)
class LayerAnalysis:
    """Analytic costs of one named layer for one iteration at ``batch`` samples."""

    name: str
    output_shape: Shape
    forward_flops: int
    backward_flops: int
    forward_bytes: int
    backward_bytes: int
    params: int
    saved_bytes: int

    @property
    def bytes(self) -> int:
        return self.forward_bytes + self.backward_bytes


def architecture(
    model: str, *, num_classes: int = 1000, image_size: int = 224, width: float = 1.0
) -> Architecture:
    """The spec of ``model`` (one of :data:`MODELS`); ``width`` scales the hidden channel counts."""
    builders: dict[str, Callable[[float, int], tuple[LayerSpec, ...]]] = {
        "alexnet": _zoo.alexnet,
        "vgg11": lambda w, c: _zoo.vgg(_zoo.VGG11, w, c),
        "vgg16": lambda w, c: _zoo.vgg(_zoo.VGG16, w, c),
        "resnet18": lambda w, c: _zoo.resnet((2, 2, 2, 2), False, w, c),
        "resnet50": lambda w, c: _zoo.resnet((3, 4, 6, 3), True, w, c),
    }
    if model not in builders:
        raise UnknownNameError("model", model, MODELS)
    arch = Architecture(model, num_classes, image_size, builders[model](width, num_classes))
    _check_fits(arch)
    return arch


def analyze(arch: Architecture, batch: int, precision: str = "fp32") -> list[LayerAnalysis]:
    """Per-layer costs at ``batch`` samples, the cross-entropy loss last (named ``loss``)."""
    act = _ACT_BYTES[precision]
    shape: Shape = arch.input_shape
    rows = []
    for index, layer in enumerate(arch.layers):
        cost = _Cost()
        shape = _chain(layer.ops, shape, batch, act, cost, needs_input_grad=index > 0)
        rows.append(cost.row(layer.name, shape))
    logits = batch * arch.num_classes * act
    loss = LayerAnalysis("loss", (), 0, 0, 2 * logits, 2 * logits, 0, logits)
    return [*rows, loss]


class _Cost:
    """Accumulates the costs of the ops of one layer."""

    def __init__(self) -> None:
        self.fwd_flops = self.bwd_flops = self.fwd_bytes = self.bwd_bytes = 0
        self.params = self.saved = 0

    def row(self, name: str, shape: Shape) -> LayerAnalysis:
        return LayerAnalysis(
            name,
            shape,
            self.fwd_flops,
            self.bwd_flops,
            self.fwd_bytes,
            self.bwd_bytes,
            self.params,
            self.saved,
        )

    def stream(self, in_bytes: int, out_bytes: int, params: int, needs_input_grad: bool) -> None:
        weights = params * _PARAM_BYTES
        self.params += params
        self.saved += in_bytes
        self.fwd_bytes += in_bytes + out_bytes + weights
        self.bwd_bytes += out_bytes + in_bytes + 2 * weights
        if needs_input_grad:
            self.bwd_bytes += in_bytes

    def matmul(self, macs: int, needs_input_grad: bool) -> None:
        self.fwd_flops += 2 * macs
        self.bwd_flops += 2 * macs * (2 if needs_input_grad else 1)


def _chain(
    ops: tuple[Op, ...], shape: Shape, batch: int, act: int, cost: _Cost, *, needs_input_grad: bool
) -> Shape:
    for position, op in enumerate(ops):
        shape = _apply(op, shape, batch, act, cost, needs_input_grad or position > 0)
    return shape


def _apply(op: Op, shape: Shape, batch: int, act: int, cost: _Cost, needs_grad: bool) -> Shape:
    if isinstance(op, Residual):
        return _residual(op, shape, batch, act, cost, needs_grad)
    out, params, macs = _shape_params_macs(op, shape)
    if not isinstance(op, Flatten):
        cost.stream(batch * _numel(shape) * act, batch * _numel(out) * act, params, needs_grad)
    cost.matmul(batch * macs, needs_grad)
    return out


def _residual(op: Residual, shape: Shape, batch: int, act: int, cost: _Cost, needs: bool) -> Shape:
    out = _chain(op.main, shape, batch, act, cost, needs_input_grad=needs)
    if op.shortcut:
        short = _chain(op.shortcut, shape, batch, act, cost, needs_input_grad=needs)
        if short != out:
            raise InputError(f"residual shortcut gives {short}, main path {out}")
    out_bytes = batch * _numel(out) * act
    cost.stream(2 * out_bytes, out_bytes, 0, needs)  # the sum of both paths
    cost.stream(out_bytes, out_bytes, 0, needs)  # the ReLU after it
    return out


def output_shape(op: Op, shape: Shape) -> Shape:
    """The per-sample shape after ``op`` given ``shape`` before it: (C, H, W) or (features,)."""
    if isinstance(op, Residual):
        for inner in op.main:
            shape = output_shape(inner, shape)
        return shape
    return _shape_params_macs(op, shape)[0]


def _shape_params_macs(op: Op, shape: Shape) -> tuple[Shape, int, int]:
    """Output shape, parameter count and multiply-adds per sample of one plain op."""
    if isinstance(op, Conv):
        c, h, w = shape
        ho, wo = (_out_size(s, op.kernel, op.stride, op.padding) for s in (h, w))
        params = op.out_channels * c * op.kernel**2 + (op.out_channels if op.bias else 0)
        return (op.out_channels, ho, wo), params, op.out_channels * ho * wo * c * op.kernel**2
    if isinstance(op, Linear):
        (f,) = shape
        return (
            (op.out_features,),
            op.out_features * (f + (1 if op.bias else 0)),
            f * op.out_features,
        )
    if isinstance(op, MaxPool):
        c, h, w = shape
        ho, wo = (_out_size(s, op.kernel, op.stride, op.padding) for s in (h, w))
        return (c, ho, wo), 0, 0
    if isinstance(op, GlobalAvgPool):
        return (shape[0], 1, 1), 0, 0
    if isinstance(op, Flatten):
        return (_numel(shape),), 0, 0
    if isinstance(op, BatchNorm):
        return shape, 2 * shape[0], 0
    return shape, 0, 0  # ReLU, Dropout


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise _TooSmall(size)
    return out


class _TooSmall(Exception):
    """Raised inside the analysis when the feature map shrinks below a kernel."""


def _numel(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _check_fits(arch: Architecture) -> None:
    try:
        analyze(arch, 1)
    except _TooSmall:
        smallest = next(s for s in range(arch.image_size + 1, 4096) if _fits(arch, s))
        raise InputError(
            f"image size {arch.image_size} is too small for {arch.name}; use at least {smallest}"
        ) from None


def _fits(arch: Architecture, size: int) -> bool:
    try:
        analyze(Architecture(arch.name, arch.num_classes, size, arch.layers), 1)
    except _TooSmall:
        return False
    return True
