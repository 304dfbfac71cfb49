"""Timestamps that do not stall the device: a monotonic clock on CPU, CUDA events on GPU.

A stamp is taken in program order; durations are read later (``wait`` first on CUDA), so taking
a stamp never synchronises: kernels keep running while the Python side moves on.
"""

from __future__ import annotations

import time
from typing import Protocol

import torch

__all__ = ["Clock", "CpuClock", "CudaClock", "clock_for"]

Stamp = object


class Clock(Protocol):
    def stamp(self) -> Stamp: ...

    def wait(self, stamp: Stamp) -> None: ...

    def ms(self, start: Stamp, end: Stamp) -> float: ...


class CpuClock:
    """``time.perf_counter_ns``: CPU kernels run synchronously, so host time is device time."""

    def stamp(self) -> Stamp:
        return time.perf_counter_ns()

    def wait(self, stamp: Stamp) -> None:
        return None

    def ms(self, start: Stamp, end: Stamp) -> float:
        assert isinstance(start, int) and isinstance(end, int)
        return (end - start) / 1e6


class CudaClock:
    """CUDA events recorded on the current stream; they time the GPU's own timeline."""

    def stamp(self) -> Stamp:
        event = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        event.record()
        return event

    def wait(self, stamp: Stamp) -> None:
        assert isinstance(stamp, torch.cuda.Event)
        stamp.synchronize()

    def ms(self, start: Stamp, end: Stamp) -> float:
        assert isinstance(start, torch.cuda.Event) and isinstance(end, torch.cuda.Event)
        return float(start.elapsed_time(end))


def clock_for(device: torch.device) -> Clock:
    return CudaClock() if device.type == "cuda" else CpuClock()
