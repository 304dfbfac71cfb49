"""Benchmarks of the profiler's targets; each prints its numbers.

::

    python -m cherrypick.workloads.cnn.bench accounting  # unattributed share of the iteration
    python -m cherrypick.workloads.cnn.bench overhead    # profiled vs plain iterations
    python -m cherrypick.workloads.cnn.bench crosscheck  # per-layer times vs torch.profiler's

Common flags: ``--models``, ``--batches``, ``--image-size``, ``--iterations``, ``--device``,
``--threads`` (torch's CPU threads; 1 keeps a shared machine's noise down).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

import torch
from cherrypick.workloads.cnn.config import TrainConfig
from cherrypick.workloads.cnn.runner import local_trainer, profile_run
from cherrypick.workloads.cnn.trainer import Trainer
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

__all__ = ["main"]

_EVALUATE = "autograd::engine::evaluate_function: "
_ACCUMULATE = "torch::autograd::AccumulateGrad"


def accounting(config: TrainConfig) -> str:
    """How much of the iteration the breakdown leaves unattributed (every steady one profiled)."""
    result = profile_run(_replace(config, sample_every=1))
    parts = result["breakdown_ms"]
    total = sum(parts.values())
    named = " ".join(f"{k}={v:.2f}" for k, v in parts.items() if k != "unattributed")
    return (
        f"{_name(config)}: iteration {total:.2f} ms (sum of parts), {named}, "
        f"unattributed {parts['unattributed']:.3f} ms = {100 * parts['unattributed'] / total:.2f} %"
    )


def overhead(config: TrainConfig) -> str:
    """Median iteration with hooks over median without, alternating iteration by iteration."""
    warmup = config.warmup
    result = profile_run(config, lambda i: i >= warmup and (i - warmup) % 2 == 0)
    walls, profiled = result["iterations"]["wall_ms"], set(result["iterations"]["profiled"])
    on = [w for i, w in enumerate(walls[warmup:], warmup) if i in profiled]
    off = [w for i, w in enumerate(walls[warmup:], warmup) if i not in profiled]
    ratio = statistics.median(on) / statistics.median(off)
    # Each profiled iteration against the plain one after it: drift on a busy machine cancels.
    paired = statistics.median(p / q for p, q in zip(on, off, strict=False))
    every = TrainConfig().sample_every
    return (
        f"{_name(config)}: profiled {statistics.median(on):.2f} ms (n={len(on)}), "
        f"plain {statistics.median(off):.2f} ms (n={len(off)}): every iteration profiled "
        f"x{ratio:.4f} (median of pairs x{paired:.4f}); sampling 1 in {every} (default) "
        f"x{1 + (ratio - 1) / every:.4f}"
    )


def crosscheck(config: TrainConfig) -> str:
    """Our per-layer times against torch.profiler's, over the same profiled iterations."""
    with local_trainer(_replace(config, sample_every=1)) as trainer:
        trainer.run(config.warmup, lambda i: False)
        measured = config.iterations - config.warmup if config.iterations else 10
        with _profiler_ranges(trainer), profile(activities=_activities(trainer)) as prof:
            ours = trainer.run(measured, lambda i: True)
        theirs = _torch_layer_times(prof.events(), trainer.layer_names, trainer.device)
    lines = [f"{_name(config)}: layer, ours ms, torch.profiler ms, error (fwd | bwd)"]
    iteration = statistics.fmean(it.wall_ms for it in ours)
    worst = 0.0
    for index, name in enumerate(trainer.layer_names):
        row = []
        for phase, times in (("forward", 0), ("backward", 1)):
            mine = statistics.fmean(getattr(it.layers, phase)[index] for it in ours if it.layers)
            other = theirs[name][times] / measured
            error = abs(mine - other) / other if other else 0.0
            if mine >= 0.01 * iteration:  # layers under 1 % of the iteration: shown, not judged
                worst = max(worst, error)
            row.append(f"{mine:8.3f} {other:8.3f} {100 * error:5.1f}%")
        lines.append(f"  {name:<10} " + " | ".join(row))
    lines.append(f"  max error over layers >= 1 % of the iteration: {100 * worst:.1f} %")
    return "\n".join(lines)


def _profiler_ranges(trainer: Trainer) -> ExitStack:
    """Hooks that open a torch.profiler range per layer forward, for the profiler to attribute."""
    stack = ExitStack()
    modules = [*(trainer.net.get_submodule(n) for n in trainer.layer_names[:-1]), trainer.criterion]
    for name, module in zip(trainer.layer_names, modules, strict=True):
        ranges: list[Any] = []

        def enter(mod: nn.Module, args: Any, name: str = name, ranges: list[Any] = ranges) -> None:
            ranges.append(record_function(f"layer::{name}").__enter__())  # type: ignore[no-untyped-call]

        def leave(mod: nn.Module, args: Any, out: Any, ranges: list[Any] = ranges) -> None:
            ranges.pop().__exit__(None, None, None)

        stack.callback(module.register_forward_pre_hook(enter).remove)
        stack.callback(module.register_forward_hook(leave).remove)
    return stack


def _activities(trainer: Trainer) -> list[ProfilerActivity]:
    if trainer.device.type == "cuda":
        return [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    return [ProfilerActivity.CPU]


def _torch_layer_times(
    events: Any, names: Sequence[str], device: torch.device
) -> dict[str, list[float]]:
    """Total forward and backward ms per layer from torch.profiler's events.

    Forward: the ops directly inside the layer's range. Backward: the autograd nodes whose
    sequence number is one of the layer's forward ops', plus the AccumulateGrad nodes that run
    right after them. Times are the ops' own (CPU, or on GPU the kernels').
    """
    duration: Callable[[Any], float] = (
        (lambda e: e.device_time_total / 1000)
        if device.type == "cuda"
        else (lambda e: e.cpu_time_total / 1000)
    )
    totals = {name: [0.0, 0.0] for name in names}
    owner: dict[int, str] = {}
    for event in events:
        if event.name.startswith("layer::"):
            name = event.name.removeprefix("layer::")
            totals[name][0] += sum(duration(child) for child in event.cpu_children)
            owner.update((seq, name) for seq in _sequence_numbers(event))
    backward = sorted(
        (e for e in events if e.name.startswith(_EVALUATE)), key=lambda e: e.time_range.start
    )
    current = None
    for event in backward:
        if not event.name.endswith(_ACCUMULATE):
            current = owner.get(event.sequence_nr)
        if current is not None:
            totals[current][1] += duration(event)
    return totals


def _sequence_numbers(event: Any) -> set[int]:
    found = {event.sequence_nr} if event.sequence_nr >= 0 else set()
    for child in event.cpu_children:
        found |= _sequence_numbers(child)
    return found


def _replace(config: TrainConfig, **changes: Any) -> TrainConfig:
    return TrainConfig(**{**config.to_dict(), **changes})


def _name(config: TrainConfig) -> str:
    return f"{config.model} batch {config.batch_size} {config.image_size}px"


_BENCHMARKS = {"accounting": accounting, "overhead": overhead, "crosscheck": crosscheck}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cherrypick.workloads.cnn.bench", description=__doc__
    )
    parser.add_argument("benchmark", choices=[*_BENCHMARKS, "all"])
    parser.add_argument("--models", default="alexnet,vgg11,resnet18")
    parser.add_argument("--batches", default="16,32")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--iterations", type=int, default=45, help="including --warmup")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args(argv)
    names = list(_BENCHMARKS) if args.benchmark == "all" else [args.benchmark]
    for bench in names:
        print(f"== {bench}", flush=True)
        for model in args.models.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                config = TrainConfig(
                    model=model,
                    batch_size=batch,
                    image_size=args.image_size,
                    iterations=args.iterations,
                    warmup=args.warmup,
                    classes=1000,
                    workers=0,
                    threads=args.threads,
                    device=args.device,
                    precision=args.precision,
                    channels_last=args.channels_last,
                    dataset_size=10 * batch,
                )
                print(_BENCHMARKS[bench](config), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
