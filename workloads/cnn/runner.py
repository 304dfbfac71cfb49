"""Run one profiled training job in this process and return its result (``profile_run``).

Started by ``torchrun``, each process joins the DDP group (NCCL on GPU, gloo on CPU), trains its
share, and rank 0 returns the result merged over all ranks. Running out of memory (CUDA or host)
or crashing does not raise: the result says ``oom`` or ``error`` with the message, so a search
marks the configuration infeasible. A mistake in the configuration raises ``InputError``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import resource
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from cherrypick.workloads.cnn import data
from cherrypick.workloads.cnn.config import TrainConfig
from cherrypick.workloads.cnn.result import RunFacts, failure, merge, summarize
from cherrypick.workloads.cnn.trainer import Iteration, Trainer

from cherrypick.errors import InputError

__all__ = ["World", "classify_failure", "environment", "local_trainer", "profile_run"]

_OOM_MARKS = (
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
    "killed by signal",
)


@dataclass(frozen=True)
class World:
    """This process's place in a torchrun job (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1


def profile_run(
    config: TrainConfig, profile_when: Callable[[int], bool] | None = None
) -> dict[str, Any]:
    """Train as ``config`` says and return the result dict (rank 0's is merged over ranks).

    ``profile_when(i)`` picks the iterations to profile; by default every ``sample_every``-th
    after warm-up (none with ``config.profile`` off).
    """
    when = profile_when or _sampling(config)
    with _distributed(config) as (world, device):
        env = environment(device, world)
        try:
            result = _train(config, world, device, env, when)
        except InputError:
            raise
        except Exception as exc:  # every other failure becomes a result: oom or error
            return failure(*classify_failure(exc), config.to_dict(), env)
        if world.size == 1:
            return result
        gathered: list[Any] = [None] * world.size if world.rank == 0 else []
        dist.gather_object(result, gathered if world.rank == 0 else None, dst=0)
        # gloo may return from the send before rank 0 has received: without this barrier a
        # sender can tear its process group down mid-transfer and abort rank 0.
        dist.barrier()
        return merge(gathered) if world.rank == 0 else result


def classify_failure(exc: BaseException) -> tuple[str, str]:
    """``("oom", message)`` for running out of CUDA or host memory, else ``("error", message)``."""
    message = f"{type(exc).__name__}: {exc}".strip()
    oom = isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or any(
        mark in str(exc).lower() for mark in _OOM_MARKS
    )
    return ("oom" if oom else "error"), message[:2000]


def environment(device: torch.device, world: World) -> dict[str, Any]:
    cuda = device.type == "cuda"
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if cuda else _cpu_name(),
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "cpu_count": os.cpu_count() or 1,
        "cpu_threads": torch.get_num_threads(),
        "world_size": world.size,
        "backend": dist.get_backend() if world.size > 1 else None,
    }


def _sampling(config: TrainConfig) -> Callable[[int], bool]:
    if not config.profile:
        return lambda index: False
    return lambda index: (
        index >= config.warmup and (index - config.warmup) % config.sample_every == 0
    )


@contextlib.contextmanager
def _distributed(config: TrainConfig) -> Iterator[tuple[World, torch.device]]:
    world = World(
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("LOCAL_RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
    )
    device = _device(config, world.local_rank)
    if world.size == 1:
        yield world, device
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield world, device
    finally:
        # What still holds the process group's backend (DistributedDataParallel's reducer can
        # sit in reference cycles) is collected now, while the interpreter is whole. Left to
        # interpreter exit, gloo's threads were torn down late and aborted a rank ("terminate
        # called without an active exception") in 3 of 53 two-rank runs here; 0 of 100 with it.
        gc.collect()
        dist.destroy_process_group()


def _device(config: TrainConfig, local_rank: int) -> torch.device:
    """The device this process trains on (set up for it), and torch's CPU threads."""
    if config.threads:
        torch.set_num_threads(config.threads)
    cuda = torch.cuda.is_available()
    if config.device == "cuda" and not cuda:
        raise InputError("device 'cuda' asked for, but torch sees no CUDA device")
    if config.device == "cpu" or not cuda:
        if config.precision == "fp16":
            raise InputError("fp16 needs a CUDA device; use bf16 on CPU")
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    torch.backends.cudnn.benchmark = True
    return torch.device("cuda", local_rank)


def _train(
    config: TrainConfig,
    world: World,
    device: torch.device,
    env: dict[str, Any],
    profile_when: Callable[[int], bool],
) -> dict[str, Any]:
    with _batches(config, world, device) as (batches, samples, prepare_s):
        trainer = Trainer(config, device, batches, world.size)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        started_age = _process_age_s() - prepare_s
        report = _progress_printer() if world.rank == 0 else None
        iterations = trainer.run(config.run_iterations(samples, world.size), profile_when, report)
        facts = _facts(config, trainer, iterations, world, device, samples, started_age)
        return summarize(config, facts, config.layer_costs(), env)


#: How a run says how far it is, on stdout (a search polls it to show "iteration k of n").
PROGRESS_MARK = "cherrypick-progress:"
#: At most this many progress lines a run: one per iteration would be noise in a long job.
_PROGRESS_LINES = 50


def _progress_printer() -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        step = max(1, total // _PROGRESS_LINES)
        if done % step == 0:
            print(f"{PROGRESS_MARK} iteration {done + 1} of {total}", flush=True)

    return report


@contextlib.contextmanager
def local_trainer(config: TrainConfig) -> Iterator[Trainer]:
    """A trainer for this process alone, with its data (for benchmarks and tests)."""
    device = _device(config, 0)
    with _batches(config, World(), device) as (batches, _, _):
        yield Trainer(config, device, batches)


@contextlib.contextmanager
def _batches(
    config: TrainConfig, world: World, device: torch.device
) -> Iterator[tuple[Iterator[list[torch.Tensor]], int, float]]:
    """Endless batches, the samples per epoch, and the seconds spent generating JPEGs."""
    with tempfile.TemporaryDirectory(prefix="cherrypick-jpeg-") as tmp:
        started = time.monotonic()
        jpeg_root = None
        if config.data_kind == "jpeg":
            jpeg_root = data.generate_jpeg_dataset(
                Path(tmp), config.classes, config.images_per_class, config.image_size, config.seed
            )
        prepare_s = time.monotonic() - started
        dataset = data.build_dataset(config, jpeg_root)
        samples = config.samples_per_epoch() or len(dataset)  # type: ignore[arg-type]
        loader = data.make_loader(dataset, config, world.rank, world.size, device.type == "cuda")
        yield data.endless(loader), samples, prepare_s


def _facts(
    config: TrainConfig,
    trainer: Trainer,
    iterations: list[Iteration],
    world: World,
    device: torch.device,
    samples: int,
    started_age: float,
) -> RunFacts:
    steady = iterations[config.warmup :]
    profiled = [it for it in steady if it.layers is not None]
    distributed = world.size > 1
    walls = [it.wall_ms for it in iterations]
    steady_ms = statistics.median(it.wall_ms for it in steady)
    warmup_excess_s = (sum(walls[: config.warmup]) - config.warmup * steady_ms) / 1000
    first, last = trainer.loss_values()
    return RunFacts(
        wall_ms=walls,
        breakdowns=[it.breakdown(distributed) for it in (profiled or steady)],
        layer_forward=[it.layers.forward for it in profiled if it.layers],
        layer_backward=[it.layers.backward for it in profiled if it.layers],
        profiled_iterations=[it.index for it in profiled],
        startup_s=started_age + warmup_excess_s,
        samples_per_epoch=samples,
        world_size=world.size,
        rank=world.rank,
        peak_gpu_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        peak_host_rss_bytes=_peak_rss_bytes(),
        first_loss=first,
        last_loss=last,
    )


def _peak_rss_bytes() -> int:
    """Peak resident memory of this process and its data-loader workers (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return int(max(own, workers) * 1024)


def _process_age_s() -> float:
    """Seconds since this process started (interpreter and imports included), 0 if unknown."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
