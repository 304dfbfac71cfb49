"""Torch modules built from the layer specs of ``cherrypick.workloads.cnn.arch`` (plain torch).

The network is an ``nn.Sequential`` whose named children are the spec's layers; a dotted name such
as ``layer1.0`` becomes a nested ``Sequential``, so ``model.get_submodule(name)`` finds every layer.
ReLUs are not in place: an in-place op on a tensor that carries a profiling hook would move it.
"""

from __future__ import annotations

import torch
from cherrypick.workloads.cnn.arch import (
    Architecture,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool,
    Op,
    ReLU,
    Residual,
    output_shape,
)
from torch import nn

__all__ = ["ResidualBlock", "build_model", "named_layers"]

Shape = tuple[int, ...]


class ResidualBlock(nn.Module):
    """``relu(main(x) + shortcut(x))``."""

    def __init__(self, main: nn.Sequential, shortcut: nn.Module) -> None:
        super().__init__()
        self.main = main
        self.shortcut = shortcut
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.relu(self.main(x) + self.shortcut(x))
        return out


def build_model(arch: Architecture) -> nn.Sequential:
    """The network of ``arch``, with fresh weights (seed torch first for repeatable ones)."""
    root = nn.Sequential()
    shape = arch.input_shape
    for layer in arch.layers:
        seq, shape = _sequence(layer.ops, shape)
        parent: nn.Module = root
        *parents, leaf = layer.name.split(".")
        for part in parents:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Sequential())
            parent = parent.get_submodule(part)
        parent.add_module(leaf, seq)
    return root


def named_layers(model: nn.Module, arch: Architecture) -> list[tuple[str, nn.Module]]:
    """The spec's named layers of a model built by :func:`build_model`, in order."""
    return [(layer.name, model.get_submodule(layer.name)) for layer in arch.layers]


def _sequence(ops: tuple[Op, ...], shape: Shape) -> tuple[nn.Sequential, Shape]:
    seq = nn.Sequential()
    for op in ops:
        seq.append(_module(op, shape))
        shape = output_shape(op, shape)
    return seq, shape


def _module(op: Op, shape: Shape) -> nn.Module:
    if isinstance(op, Conv):
        return nn.Conv2d(shape[0], op.out_channels, op.kernel, op.stride, op.padding, bias=op.bias)
    if isinstance(op, Linear):
        return nn.Linear(shape[0], op.out_features, bias=op.bias)
    if isinstance(op, MaxPool):
        return nn.MaxPool2d(op.kernel, op.stride, op.padding)
    if isinstance(op, Dropout):
        return nn.Dropout(op.p)
    if isinstance(op, BatchNorm):
        return nn.BatchNorm2d(shape[0])
    if isinstance(op, Residual):
        shortcut = _sequence(op.shortcut, shape)[0] if op.shortcut else nn.Identity()
        return ResidualBlock(_sequence(op.main, shape)[0], shortcut)
    if isinstance(op, GlobalAvgPool):
        return nn.AdaptiveAvgPool2d(1)
    if isinstance(op, Flatten):
        return nn.Flatten()
    assert isinstance(op, ReLU)
    return nn.ReLU()
