"""Per-layer forward and backward timing with hooks that exist only on profiled iterations.

Forward: a pre-hook and a post-hook on each named layer take a stamp. Backward, without module
backward hooks (a full backward hook can fire before the weight gradient is accumulated, and
clashes with in-place ops): the post-hook puts a tensor hook on the layer's output, which fires
when the gradient for the output is ready, i.e. when the layer's backward starts; the pre-hook puts
one on the layer's input, which fires when the gradient for the input is ready. Autograd runs a
layer's AccumulateGrad nodes before any other ready node, so by then its weight gradients are
accumulated too. The first layer's input needs no gradient: its parameters get
post-accumulate-grad hooks instead. A layer's backward runs from the output's stamp to the last of
the others, so it includes the weight-gradient accumulation.

Hooks are registered by :meth:`LayerProfiler.attach` and removed by :meth:`detach`, so an
iteration that is not profiled runs exactly as without a profiler. Stamps come from a
``Clock``: CUDA events on GPU, read after the iteration has finished, so no layer synchronises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from cherrypick.workloads.cnn._clock import Clock, Stamp
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["LayerProfiler", "LayerSample", "LayerTimes"]


@dataclass
class LayerSample:
    """The stamps of one profiled iteration, by layer index."""

    fwd_start: list[Stamp | None]
    fwd_end: list[Stamp | None]
    out_grad: list[Stamp | None]
    in_grad: list[Stamp | None]
    params_done: list[list[Stamp]] = field(default_factory=list)

    @classmethod
    def empty(cls, n: int) -> LayerSample:
        return cls([None] * n, [None] * n, [None] * n, [None] * n, [[] for _ in range(n)])


@dataclass(frozen=True)
class LayerTimes:
    """Resolved per-layer times of one iteration (ms); ``backward_end`` is from ``origin``."""

    forward: tuple[float, ...]
    backward: tuple[float, ...]
    backward_end: float


class LayerProfiler:
    """Times the named layers (in execution order) on iterations between attach and detach."""

    def __init__(self, layers: Sequence[tuple[str, nn.Module]], clock: Clock) -> None:
        self.names = [name for name, _ in layers]
        self._modules = [module for _, module in layers]
        self._clock = clock
        self._sample = LayerSample.empty(len(layers))
        self._handles: list[RemovableHandle] = []
        # Only the first layer needs parameter hooks: autograd runs the AccumulateGrad nodes of
        # a layer before any other ready node, so a later layer's weight gradients are in place
        # when the gradient for its input arrives (tests/test_cnn_profiler.py checks the order).
        first = self._modules[0] if self._modules else None
        self._first_params = [p for p in first.parameters() if p.requires_grad] if first else []
        n = range(len(layers))
        self._pre = [self._pre_hook(i) for i in n]
        self._post = [self._post_hook(i) for i in n]
        self._out_grad = [self._grad_hook(i, output=True) for i in n]
        self._in_grad = [self._grad_hook(i, output=False) for i in n]
        self._first_done = self._accumulated_hook(0)

    def attach(self) -> None:
        self._sample = LayerSample.empty(len(self._modules))
        handles = self._handles
        for i, module in enumerate(self._modules):
            handles.append(module.register_forward_pre_hook(self._pre[i]))
            handles.append(module.register_forward_hook(self._post[i]))
        for param in self._first_params:
            register = param.register_post_accumulate_grad_hook
            handles.append(register(self._first_done))  # type: ignore[no-untyped-call]

    def detach(self) -> LayerSample:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        return self._sample

    def resolve(self, sample: LayerSample, origin: Stamp) -> LayerTimes:
        """Per-layer times once the iteration's stamps have completed."""
        ms = self._clock.ms
        forward, backward, ends = [], [], [0.0]
        for i in range(len(self._modules)):
            start, end = sample.fwd_start[i], sample.fwd_end[i]
            forward.append(ms(start, end) if start is not None and end is not None else 0.0)
            grad_out = sample.out_grad[i]
            if grad_out is None:
                backward.append(0.0)
                continue
            begin = ms(origin, grad_out)
            done = [
                ms(origin, s) for s in (sample.in_grad[i], *sample.params_done[i]) if s is not None
            ]
            finish = max(done, default=begin)
            backward.append(max(0.0, finish - begin))
            ends.append(finish)
        return LayerTimes(tuple(forward), tuple(backward), max(ends))

    def _pre_hook(self, i: int) -> Callable[[nn.Module, tuple[object, ...]], None]:
        def hook(module: nn.Module, args: tuple[object, ...]) -> None:
            x = args[0] if args else None
            if isinstance(x, torch.Tensor) and x.requires_grad:
                x.register_hook(self._in_grad[i])  # type: ignore[no-untyped-call]
            self._sample.fwd_start[i] = self._clock.stamp()  # after the hook set-up: not timed

        return hook

    def _post_hook(self, i: int) -> Callable[[nn.Module, tuple[object, ...], object], None]:
        def hook(module: nn.Module, args: tuple[object, ...], out: object) -> None:
            self._sample.fwd_end[i] = self._clock.stamp()
            if isinstance(out, torch.Tensor) and out.requires_grad:
                out.register_hook(self._out_grad[i])  # type: ignore[no-untyped-call]

        return hook

    def _grad_hook(self, i: int, *, output: bool) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            stamps = self._sample.out_grad if output else self._sample.in_grad
            stamps[i] = self._clock.stamp()

        return hook

    def _accumulated_hook(self, i: int) -> Callable[[torch.Tensor], None]:
        def hook(param: torch.Tensor) -> None:
            self._sample.params_done[i].append(self._clock.stamp())

        return hook
