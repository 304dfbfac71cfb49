"""The training loop, timed phase by phase, with per-layer profiling on chosen iterations.

An iteration is five phases between six stamps, each phase ending where the next begins (so they
tile the iteration): waiting for data, host-to-device copy, forward (model and loss), backward
(including the gradient all-reduce DDP waits for at its end), and the optimiser step. The stamps
are CUDA events on GPU, so the phases measure the GPU's timeline: ``data`` is the time the GPU
waited for the next batch, not the time the loader took in the background. Stamps are read two
iterations late, so the loop never waits for the GPU except to keep at most two iterations queued.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from cherrypick.workloads.cnn._clock import Stamp, clock_for
from cherrypick.workloads.cnn.config import TrainConfig
from cherrypick.workloads.cnn.models import build_model, named_layers
from cherrypick.workloads.cnn.profiler import LayerProfiler, LayerSample, LayerTimes
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["PHASES", "Iteration", "Trainer"]

PHASES = ("data", "h2d", "forward", "backward", "optimizer")
_LAG = 2
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Iteration:
    """The measured times of one iteration (ms)."""

    index: int
    wall_ms: float
    phases: dict[str, float]
    layers: LayerTimes | None

    def breakdown(self, distributed: bool) -> dict[str, float]:
        """Where the time went; ``unattributed`` is what no layer or phase accounts for.

        With layer times, forward and backward are the sums over layers and the communication
        not hidden behind backward is the wait from the last layer's backward to backward's end.
        """
        parts = {name: self.phases[name] for name in ("data", "h2d", "optimizer")}
        parts["forward"] = self.phases["forward"]
        parts["backward"] = self.phases["backward"]
        parts["communication"] = 0.0
        if self.layers is not None:
            parts["forward"] = sum(self.layers.forward)
            parts["backward"] = sum(self.layers.backward)
            if distributed:
                backward_done = sum(self.phases[p] for p in PHASES[:4])
                parts["communication"] = max(0.0, backward_done - self.layers.backward_end)
        parts["unattributed"] = self.wall_ms - sum(parts.values())
        return parts


@dataclass
class _Pending:
    index: int
    stamps: list[Stamp]
    sample: LayerSample | None


class Trainer:
    """One process's model, optimiser and data, trained iteration by iteration."""

    def __init__(
        self,
        config: TrainConfig,
        device: torch.device,
        batches: Iterator[list[torch.Tensor]],
        world_size: int = 1,
    ) -> None:
        self.config = config
        self.device = device
        self.world_size = world_size
        self._batches = batches
        self._format = torch.channels_last if config.channels_last else torch.contiguous_format
        arch = config.architecture()
        torch.manual_seed(config.seed)
        net = build_model(arch).to(device, memory_format=self._format)  # type: ignore[call-overload]
        self.criterion = nn.CrossEntropyLoss()
        self.layer_names = [layer.name for layer in arch.layers] + ["loss"]
        self.net = net
        self.model: nn.Module = net
        if world_size > 1:
            ids = [device.index] if device.type == "cuda" else None
            # Buffers (BatchNorm statistics) are synced once, not before each forward: that
            # would put communication inside the forward pass, outside every layer.
            self.model = DistributedDataParallel(net, device_ids=ids, forward_sync_buffers=False)
        self.optimizer = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum)
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.clock = clock_for(device)
        self.profiler: LayerProfiler | None = None
        if config.profile:
            layers = [*named_layers(net, arch), ("loss", self.criterion)]
            self.profiler = LayerProfiler(layers, self.clock)
        self.losses: list[torch.Tensor] = []
        self._pending: deque[_Pending] = deque()
        self._done: list[Iteration] = []
        self._last_end: Stamp | None = None

    def run(
        self,
        iterations: int,
        profile_when: Callable[[int], bool],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Iteration]:
        """Train ``iterations`` more iterations; profile those for which ``profile_when(i)``;
        ``progress(done, total)`` hears of each one started."""
        self.model.train()
        start = len(self._done) + len(self._pending)
        for index in range(start, start + iterations):
            if progress is not None:
                progress(index - start, iterations)
            self._pending.append(self._step(index, profile_when(index)))
            while len(self._pending) > _LAG:
                self._done.append(self._resolve(self._pending.popleft()))
        while self._pending:
            self._done.append(self._resolve(self._pending.popleft()))
        return self._done[start:]

    def loss_values(self) -> tuple[float, float]:
        """The first and the last iteration's loss."""
        return float(self.losses[0].item()), float(self.losses[-1].item())

    def _step(self, index: int, profiled: bool) -> _Pending:
        stamp = self.clock.stamp
        start = self._last_end if self._last_end is not None else stamp()
        x, y = next(self._batches)
        data = stamp()
        x = x.to(self.device, non_blocking=True, memory_format=self._format)
        y = y.to(self.device, non_blocking=True)
        h2d = stamp()
        if profiled and self.profiler is not None:
            self.profiler.attach()
        with self._autocast():
            loss = self.criterion(self.model(x), y)
        forward = stamp()
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        sample = self.profiler.detach() if profiled and self.profiler is not None else None
        backward = stamp()
        self._optimizer_step()
        end = self._last_end = stamp()
        self._keep_loss(index, loss)
        return _Pending(index, [start, data, h2d, forward, backward, end], sample)

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        dtype = _DTYPES.get(self.config.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _optimizer_step(self) -> None:
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def _keep_loss(self, index: int, loss: torch.Tensor) -> None:
        """Keep the first and the latest loss on the device; reading them now would sync."""
        if index == 0:
            self.losses = [loss.detach()]
        self.losses[1:] = [loss.detach()]

    def _resolve(self, pending: _Pending) -> Iteration:
        stamps = pending.stamps
        self.clock.wait(stamps[-1])
        ms = self.clock.ms
        phases = {name: ms(stamps[k], stamps[k + 1]) for k, name in enumerate(PHASES)}
        layers = None
        if pending.sample is not None and self.profiler is not None:
            layers = self.profiler.resolve(pending.sample, stamps[0])
        return Iteration(pending.index, ms(stamps[0], stamps[-1]), phases, layers)
