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

Saved bytes are what autograd keeps for backward, op by op, after the backward formulas of
PyTorch's ``tools/autograd/derivatives.yaml`` (see :func:`_save_for_backward`); a tensor that two
ops keep (a ReLU's output and the next convolution's input) is one storage and counts once, in the
layer that keeps it first. Under autocast every activation is in the low precision: convolutions
and linear layers run in it (CUDA's list in ``aten/src/ATen/autocast_mode.cpp``, the same ops for
fp16 and bf16), and batch norm, ReLU, pooling, dropout and the residual sum keep their input's
dtype. ``cherrypick.workloads.cnn.memory`` measures the same bytes on a built model.
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
_FP32_BYTES = 4
_INDEX_BYTES = 8  # torch.int64: pooling indices and class targets
_MASK_BYTES = 1  # torch.bool


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
    walk = _Walk(batch, _ACT_BYTES[precision])
    x = walk.new(arch.input_shape)
    rows = []
    for index, layer in enumerate(arch.layers):
        walk.cost = _Cost()
        x = _chain(layer.ops, x, walk, needs_input_grad=index > 0)
        rows.append(walk.cost.row(layer.name, x.shape))
    logits = batch * arch.num_classes * walk.act
    # log_softmax and nll_loss are on autocast's fp32 list (and measured fp32 on CPU too):
    # _log_softmax keeps its fp32 result, nll_loss the same storage and the int64 targets.
    saved = batch * arch.num_classes * _FP32_BYTES + batch * _INDEX_BYTES
    loss = LayerAnalysis("loss", (), 0, 0, 2 * logits, 2 * logits, 0, saved)
    return [*rows, loss]


@dataclass(frozen=True)
class _Act:
    """An activation of the forward pass: the storage it lives in and its per-sample shape."""

    storage: int
    shape: Shape


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
        self.fwd_bytes += in_bytes + out_bytes + weights
        self.bwd_bytes += out_bytes + in_bytes + 2 * weights
        if needs_input_grad:
            self.bwd_bytes += in_bytes

    def matmul(self, macs: int, needs_input_grad: bool) -> None:
        self.fwd_flops += 2 * macs
        self.bwd_flops += 2 * macs * (2 if needs_input_grad else 1)


class _Walk:
    """One pass over the layers: the batch, the activation width, the storages saved so far."""

    def __init__(self, batch: int, act: int) -> None:
        self.batch = batch
        self.act = act
        self.cost = _Cost()
        self._storages = 0
        self._saved: set[int] = set()

    def new(self, shape: Shape) -> _Act:
        self._storages += 1
        return _Act(self._storages, shape)

    def nbytes(self, x: _Act) -> int:
        return self.batch * _numel(x.shape) * self.act

    def save(self, x: _Act) -> None:
        """Autograd keeps ``x`` for backward; a storage already kept costs nothing more."""
        if x.storage not in self._saved:
            self._saved.add(x.storage)
            self.cost.saved += self.nbytes(x)

    def save_own(self, nbytes: int) -> None:
        """Autograd keeps a tensor only this op made (pooling indices, a mask, statistics)."""
        self.cost.saved += nbytes


def _chain(ops: tuple[Op, ...], x: _Act, walk: _Walk, *, needs_input_grad: bool) -> _Act:
    for position, op in enumerate(ops):
        x = _apply(op, x, walk, needs_input_grad or position > 0)
    return x


def _apply(op: Op, x: _Act, walk: _Walk, needs_grad: bool) -> _Act:
    if isinstance(op, Residual):
        return _residual(op, x, walk, needs_grad)
    shape, params, macs = _shape_params_macs(op, x.shape)
    # A flatten is a view of its input's storage; every other op writes a new tensor.
    out = _Act(x.storage, shape) if isinstance(op, Flatten) else walk.new(shape)
    if not isinstance(op, Flatten):
        walk.cost.stream(walk.nbytes(x), walk.nbytes(out), params, needs_grad)
    walk.cost.matmul(walk.batch * macs, needs_grad)
    _save_for_backward(op, x, out, walk)
    return out


def _save_for_backward(op: Op, x: _Act, out: _Act, walk: _Walk) -> None:
    """What autograd keeps for ``op``'s backward: the tensors its formula in PyTorch's
    ``tools/autograd/derivatives.yaml`` names (the entry of the ATen op that the module calls).
    Weights and running statistics are the model's own and are not counted here."""
    if isinstance(op, Conv | Linear):
        # convolution (convolution_backward) and addmm (mm_mat2_backward) need the input for
        # the weight gradient; under autocast it is the low-precision copy the op received.
        walk.save(x)
    elif isinstance(op, BatchNorm):
        # native_batch_norm / cudnn_batch_norm: the input, and save_mean and save_invstd
        # (result1, result2), one fp32 value per channel each whatever the batch.
        walk.save(x)
        walk.save_own(2 * x.shape[0] * _FP32_BYTES)
    elif isinstance(op, ReLU):
        walk.save(out)  # threshold_backward(grad, result, 0)
    elif isinstance(op, MaxPool):
        # max_pool2d_with_indices: its input (self) and the argmax of each output (result1),
        # int64 whatever the activation dtype.
        walk.save(x)
        walk.save_own(walk.batch * _numel(out.shape) * _INDEX_BYTES)
    elif isinstance(op, Dropout):
        # native_dropout on CUDA keeps only its bool mask (result1). On CPU torch takes the
        # unfused path, input * noise, and mul keeps the noise in the input's dtype instead.
        walk.save_own(walk.batch * _numel(out.shape) * _MASK_BYTES)
    # GlobalAvgPool: adaptive_avg_pool2d to 1x1 is mean over H and W, whose mean_backward needs
    # only sizes; Flatten is a view; the residual sum (add.Tensor) keeps nothing.


def _residual(op: Residual, x: _Act, walk: _Walk, needs: bool) -> _Act:
    main = _chain(op.main, x, walk, needs_input_grad=needs)
    short = _chain(op.shortcut, x, walk, needs_input_grad=needs)
    if short.shape != main.shape:
        raise InputError(f"residual shortcut gives {short.shape}, main path {main.shape}")
    total = walk.new(main.shape)
    out_bytes = walk.nbytes(total)
    walk.cost.stream(2 * out_bytes, out_bytes, 0, needs)  # the sum of both paths
    out = walk.new(main.shape)
    walk.cost.stream(out_bytes, out_bytes, 0, needs)  # the ReLU after it
    walk.save(out)  # threshold_backward(grad, result, 0)
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
