"""``python -m cherrypick.perfmodel.gpu_check``: the performance model against this machine.

Trains AlexNet, VGG-11 and ResNet-50 at two batch sizes each, in fp16 and fp32 (bf16 on CPU), a
few iterations each with the workload's own profiled trainer
(``cherrypick.workloads.cnn.runner.profile_run``), and prints per run the predicted against the
measured iteration time and peak memory. Then, from each run's measured layer times, it predicts
other GPUs layer by layer (``cherrypick.perfmodel.calibrate``, as Habitat does), beside the
datasheet roofline's prediction and the chance that the job fits in their memory.

Memory on CUDA: ``torch.cuda.max_memory_allocated`` against the model's allocated items (all but
the allocator's slack and the CUDA context, which PyTorch does not count as allocated); and those
two measured as well: the peak reserved over the peak allocated bytes, and what the device holds
beyond PyTorch's reservation (the context and the libraries' own; valid on a GPU no other process
uses). On CPU there is no GPU memory: what is measured is the bytes autograd saves for backward
(``cherrypick.workloads.cnn.memory``) against the model's activations, and the times stand for a
GPU the run did not use (``--gpu``), so their errors only check the script. ``--quick``: tiny
models on small images, for tests. Progress goes to stderr, tables to stdout, all to ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cherrypick.catalog.gpus import GpuSpec
from cherrypick.errors import CherrypickError, InputError, UnknownNameError
from cherrypick.perfmodel.calibrate import gpu_key
from cherrypick.perfmodel.model import PerformanceModel, fit_probability
from cherrypick.perfmodel.predict import memory_breakdown
from cherrypick.providers.base import Candidate, Offering
from cherrypick.workloads.base import JobProfile
from cherrypick.workloads.cnn.config import TrainConfig
from cherrypick.workloads.cnn.workload import CNNWorkload

__all__ = ["TARGETS", "check_run", "configs", "main"]

#: The GPUs predicted from each run's measured layer times.
TARGETS = ("A100", "V100", "T4", "L4")
_MODELS = {"alexnet": (128, 256), "vgg11": (64, 128), "resnet50": (64, 256)}
_QUICK_MODELS = {"alexnet": (4,), "resnet50": (4,)}
#: What PyTorch's allocator does not count as allocated (``predict.memory_breakdown``'s keys).
_NOT_ALLOCATED = ("allocator_slack", "cuda_context")
_GIB = 2**30


def configs(device: str, quick: bool) -> list[TrainConfig]:
    """The runs: every model x batch x precision."""
    half = "fp16" if device == "cuda" else "bf16"
    common: dict[str, Any] = {"device": device, "classes": 1000, "seed": 0}
    if quick:
        common |= {"image_size": 64, "width": 0.125, "classes": 10, "dataset_size": 64}
        common |= {"iterations": 6, "warmup": 2, "sample_every": 2, "workers": 0}
    else:
        workers = max(2, min(8, (os.cpu_count() or 2) // 2))
        common |= {"iterations": 25, "warmup": 5, "sample_every": 5, "workers": workers}
    return [
        TrainConfig(model=model, batch_size=batch, precision=precision, **common)
        for model, batches in (_QUICK_MODELS if quick else _MODELS).items()
        for batch in batches
        for precision in ("fp32", half)
    ]


def check_run(config: TrainConfig, gpu: str, gpus: Mapping[str, GpuSpec]) -> dict[str, Any]:
    """Train ``config`` here and compare it with the model's predictions (one JSON record)."""
    from cherrypick.workloads.cnn.runner import profile_run

    cuda = config.device == "cuda"
    if cuda:
        _release_cuda()
    with contextlib.redirect_stdout(sys.stderr):  # its progress lines, not our tables
        result = profile_run(config)
    profile = CNNWorkload(config.to_dict()).simulation_profile()
    record: dict[str, Any] = {
        "model": config.model,
        "batch_size": config.batch_size,
        "precision": config.precision,
        "status": result["status"],
        "config": config.to_dict(),
    }
    if result["status"] != "ok":
        return {**record, "message": result["message"]}
    saved = _saved_activations(config, profile)
    memory = _cuda_memory(result, profile) | {"activations": saved} if cuda else saved
    calibrated = _calibrated(config, result, gpu)
    model = PerformanceModel(gpus)
    here = _one_gpu(gpu, gpus[gpu])
    predicted = model.predict(here, profile)
    record |= {
        "iteration_ms": {
            "predicted": predicted.iteration_s * 1000,
            "measured": result["iteration_ms"],
            "calibrated": model.predict(here, calibrated).iteration_s * 1000,
            "measured_data_wait": result["breakdown_ms"]["data"],
        },
        "memory": memory,
        "targets": [_target(model, t, gpus, profile, calibrated) for t in _targets(gpu)],
        "layers": [
            {"name": row["name"], "measured_ms": row["forward_ms"] + row["backward_ms"]}
            for row in result["layers"]
        ],
    }
    return record


def _calibrated(config: TrainConfig, result: Mapping[str, Any], gpu: str) -> JobProfile:
    """The job's profile calibrated by ``result``, read as a search reads a calibration file;
    ``gpu`` names the GPU it stands for (on CPU, one it did not run on)."""
    with tempfile.TemporaryDirectory(prefix="cherrypick-gpu-check-") as tmp:
        path = Path(tmp) / "result.json"
        path.write_text(json.dumps(result))
        params = {**config.to_dict(), "calibration": str(path)}
        profile = CNNWorkload(params).simulation_profile()
    assert profile.calibration is not None
    return dataclasses.replace(profile, calibration={**profile.calibration, "gpu": gpu})


def _target(
    model: PerformanceModel,
    gpu: str,
    gpus: Mapping[str, GpuSpec],
    profile: JobProfile,
    calibrated: JobProfile,
) -> dict[str, Any]:
    candidate = _one_gpu(gpu, gpus[gpu])
    roofline = model.predict(candidate, profile)
    scaled = model.predict(candidate, calibrated)
    return {
        "gpu": gpu,
        "roofline_ms": roofline.iteration_s * 1000,
        "calibrated_ms": scaled.iteration_s * 1000,
        "fit_probability": fit_probability(profile, roofline.memory_limit_bytes),
        "layers_ms": [(t.forward_s + t.backward_s) * 1000 for t in scaled.layers],
    }


def _targets(gpu: str) -> list[str]:
    return [t for t in TARGETS if t != gpu]


def _one_gpu(gpu: str, spec: GpuSpec) -> Candidate:
    """One GPU of the kind on one node, as the model sees it (synthetic data: no vCPUs needed)."""
    offering = Offering(
        provider="local",
        region="local",
        instance_type=f"1x{gpu}",
        vcpus=os.cpu_count() or 1,
        memory_gib=0.0,
        gpu=gpu,
        gpus_per_node=1,
        gpu_memory_gib=spec.memory_gib,
        interconnect="pcie",
        price_per_hour=1.0,
    )
    return Candidate(offering)


def _cuda_memory(result: Mapping[str, Any], profile: JobProfile) -> dict[str, Any]:
    """The peak allocated, the peak reserved and what the device holds beyond PyTorch's cache."""
    import torch

    free, total = torch.cuda.mem_get_info()
    breakdown = memory_breakdown(profile)
    allocated = result["memory"]["peak_gpu_bytes"]
    reserved = torch.cuda.max_memory_reserved()
    beyond = total - free - torch.cuda.memory_reserved()
    predicted_allocated = sum(v for k, v in breakdown.items() if k not in _NOT_ALLOCATED)
    return {
        "what": "torch.cuda.max_memory_allocated",
        "predicted": predicted_allocated,
        "measured": allocated,
        "predicted_total": sum(breakdown.values()),
        "measured_total": reserved + beyond,
        "predicted_slack": breakdown["allocator_slack"] / predicted_allocated,
        "measured_slack": reserved / allocated - 1 if allocated else None,
        "predicted_beyond_pytorch": breakdown["cuda_context"],
        "measured_beyond_pytorch": beyond,
    }


def _saved_activations(config: TrainConfig, profile: JobProfile) -> dict[str, Any]:
    from cherrypick.workloads.cnn.memory import measure_saved_bytes

    saved = measure_saved_bytes(config, config.device)
    return {
        "what": "bytes autograd saves for backward (cherrypick.workloads.cnn.memory)",
        "predicted": profile.activation_bytes_per_sample * config.batch_size,
        "measured": saved.activation_bytes_per_sample * config.batch_size,
    }


def _release_cuda() -> None:
    """Give the last run's cached blocks back, so this run's reservation is its own."""
    import torch

    gc.collect()
    torch.cuda.empty_cache()


def format_report(report: Mapping[str, Any]) -> list[str]:
    """The layer tables, the other GPUs, then the runs here (the most read, last)."""
    runs = [r for r in report["runs"] if r["status"] == "ok"]
    lines = []
    for run in runs:
        lines += _layer_table(run)
    lines += ["", "other GPUs, from the datasheets (roofline) and from this run's layers"]
    lines.append(f"{'run':<22} {'gpu':<5} {'roofline ms':>11} {'calibrated ms':>13} {'P(fits)':>8}")
    for run in runs:
        for t in run["targets"]:
            lines.append(
                f"{_label(run):<22} {t['gpu']:<5} {t['roofline_ms']:11.2f}"
                f" {t['calibrated_ms']:13.2f} {t['fit_probability']:8.2f}"
            )
    lines += ["", f"measured on {report['device_name']} as {report['gpu']}"]
    if runs:
        lines.append(f"memory: {runs[0]['memory']['what']}")
    lines.append(
        f"{'run':<22} {'iter ms: model':>14} {'measured':>9} {'error':>7} {'calibrated':>10}"
        f" {'data wait':>9}  {'memory MB: model':>16} {'measured':>9} {'error':>7}"
    )
    lines += [_run_line(run) for run in report["runs"]]
    if runs and "predicted_total" in runs[0]["memory"]:
        lines += _cuda_memory_table(runs)
    return lines


def _cuda_memory_table(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The saved activations (counted), and the estimated items measured: the allocator's slack
    and what PyTorch does not hold."""
    lines = [
        "",
        "memory: saved activations (autograd's pack hook), reserved / allocated - 1 (slack),"
        " device use beyond PyTorch's reservation (context), and the total",
        f"{'run':<22} {'activations MB: model':>21} {'measured':>9}  {'slack: model':>12}"
        f" {'measured':>9}  {'context MB: model':>17} {'measured':>9}  {'total MB: model':>15}"
        f" {'measured':>9} {'error':>7}",
    ]
    for run in runs:
        m, saved = run["memory"], run["memory"]["activations"]
        slack = "n/a" if m["measured_slack"] is None else f"{m['measured_slack']:.1%}"
        lines.append(
            f"{_label(run):<22} {saved['predicted'] / 1e6:21.0f} {saved['measured'] / 1e6:9.0f}"
            f"  {m['predicted_slack']:12.1%} {slack:>9}"
            f"  {m['predicted_beyond_pytorch'] / 1e6:17.0f}"
            f" {m['measured_beyond_pytorch'] / 1e6:9.0f}"
            f"  {m['predicted_total'] / 1e6:15.0f} {m['measured_total'] / 1e6:9.0f}"
            f" {_error(m['predicted_total'], m['measured_total']):>7}"
        )
    return lines


def _label(run: Mapping[str, Any]) -> str:
    return f"{run['model']} b{run['batch_size']} {run['precision']}"


def _layer_table(run: Mapping[str, Any]) -> list[str]:
    gpus = [t["gpu"] for t in run["targets"]]
    lines = ["", f"{_label(run)}: layer ms, measured here and calibrated to other GPUs"]
    lines.append(f"{'layer':<10} {'measured':>9}" + "".join(f" {g:>8}" for g in gpus))
    for i, layer in enumerate(run["layers"]):
        scaled = "".join(f" {t['layers_ms'][i]:8.3f}" for t in run["targets"])
        lines.append(f"{layer['name']:<10} {layer['measured_ms']:9.3f}{scaled}")
    return lines


def _run_line(run: Mapping[str, Any]) -> str:
    if run["status"] != "ok":
        return f"{_label(run):<22} {run['status']}: {run['message'][:70]}"
    it, mem = run["iteration_ms"], run["memory"]
    return (
        f"{_label(run):<22} {it['predicted']:14.2f} {it['measured']:9.2f}"
        f" {_error(it['predicted'], it['measured']):>7} {it['calibrated']:10.2f}"
        f" {it['measured_data_wait']:9.2f}  {mem['predicted'] / 1e6:16.1f}"
        f" {mem['measured'] / 1e6:9.1f} {_error(mem['predicted'], mem['measured']):>7}"
    )


def _error(predicted: float, measured: float) -> str:
    return f"{predicted / measured - 1:+.0%}" if measured else "n/a"


def run_checks(device: str, quick: bool, gpu: str | None) -> dict[str, Any]:
    """Every run on ``device``; ``gpu``: the catalog GPU its numbers stand for."""
    import torch

    from cherrypick.catalog import load_gpus
    from cherrypick.workloads.cnn.runner import World, environment

    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but torch sees no CUDA device")
    env = environment(torch.device("cuda", 0) if device == "cuda" else torch.device("cpu"), World())
    gpus = load_gpus()
    key = gpu or (gpu_key(env["device_name"], gpus) if device == "cuda" else "H100")
    if key not in gpus:
        raise UnknownNameError("GPU", key, gpus)
    runs = []
    todo = configs(device, quick)
    for n, config in enumerate(todo, start=1):
        label = f"[{n}/{len(todo)}] {config.model} batch {config.batch_size} {config.precision}"
        _say(f"{label}: training {config.iterations} iterations")
        started = time.monotonic()
        runs.append(check_run(config, key, gpus))
        _say(f"{label}: {runs[-1]['status']} in {time.monotonic() - started:.0f} s")
    return {"device_name": env["device_name"], "gpu": key, "environment": env, "runs": runs}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cherrypick.perfmodel.gpu_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda if there is one")
    parser.add_argument("--quick", action="store_true", help="tiny models on small images")
    parser.add_argument("--gpu", help="the catalog GPU the numbers stand for (default: detected)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every number here")
    args = parser.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        report = run_checks(device, args.quick, args.gpu)
    except CherrypickError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print("\n".join(format_report(report)))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))
        _say(f"wrote {args.json}")
    return 0 if all(run["status"] == "ok" for run in report["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
