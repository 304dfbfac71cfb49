"""The op specs that layer specs are made of (pure data; see ``cherrypick.workloads.cnn.arch``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conv:
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    bias: bool = True


@dataclass(frozen=True)
class BatchNorm:
    pass


@dataclass(frozen=True)
class ReLU:
    pass


@dataclass(frozen=True)
class MaxPool:
    kernel: int
    stride: int
    padding: int = 0


@dataclass(frozen=True)
class GlobalAvgPool:
    pass


@dataclass(frozen=True)
class Flatten:
    pass


@dataclass(frozen=True)
class Dropout:
    p: float = 0.5


@dataclass(frozen=True)
class Linear:
    out_features: int
    bias: bool = True


@dataclass(frozen=True)
class Residual:
    """``relu(main(x) + shortcut(x))``; an empty shortcut is the identity."""

    main: tuple[Op, ...]
    shortcut: tuple[Op, ...] = ()


Op = Conv | BatchNorm | ReLU | MaxPool | GlobalAvgPool | Flatten | Dropout | Linear | Residual


@dataclass(frozen=True)
class LayerSpec:
    """A named layer (a paper's unit: conv + ReLU + pool, a residual block) and its ops."""

    name: str
    ops: tuple[Op, ...]
