"""``python -m cherrypick.perfmodel.gpu_check --device cpu --quick``: real training steps on tiny
models, compared with the model's predictions; the GPU run itself is done on a GPU machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cherrypick.workloads.cnn.config import TrainConfig

from cherrypick.perfmodel.gpu_check import TARGETS, configs, main


def test_the_quick_cpu_check_prints_and_writes_every_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "check.json"
    assert main(["--device", "cpu", "--quick", "--json", str(path)]) == 0
    out, err = capsys.readouterr()
    report = json.loads(path.read_text())
    runs = report["runs"]
    assert [(r["model"], r["precision"]) for r in runs] == [
        ("alexnet", "fp32"),
        ("alexnet", "bf16"),
        ("resnet50", "fp32"),
        ("resnet50", "bf16"),
    ]
    assert report["gpu"] == "H100"  # what the CPU's numbers stand for
    for run in runs:
        assert run["status"] == "ok"
        times = run["iteration_ms"]
        assert min(times["predicted"], times["measured"], times["calibrated"]) > 0
        assert times["measured_data_wait"] >= 0
        memory = run["memory"]
        assert "autograd" in memory["what"] and memory["measured"] > 0
        # The saved activations are the model's one validated claim that a CPU can check.
        assert memory["predicted"] == pytest.approx(memory["measured"], rel=0.05)
        layers = [c.name for c in TrainConfig(**run["config"]).layer_costs()]
        assert [row["name"] for row in run["layers"]] == layers
        assert all(row["measured_ms"] > 0 for row in run["layers"])
        assert [t["gpu"] for t in run["targets"]] == list(TARGETS)
        for target in run["targets"]:
            assert target["roofline_ms"] > 0 and target["calibrated_ms"] > 0
            assert 0 <= target["fit_probability"] <= 1
            assert len(target["layers_ms"]) == len(layers)
            assert all(ms > 0 for ms in target["layers_ms"])
    lines = out.splitlines()
    assert lines.count("layer       measured     A100     V100       T4       L4") == len(runs)
    table = lines[lines.index(next(x for x in lines if x.startswith("measured on "))) + 3 :]
    assert [line.split()[:3] for line in table] == [
        [r["model"], f"b{r['batch_size']}", r["precision"]] for r in runs
    ]
    assert all(float(line.split()[3]) > 0 and float(line.split()[4]) > 0 for line in table)
    assert "[4/4] resnet50 batch 4 bf16: ok" in err and "cherrypick-progress" not in out


def test_the_full_check_is_three_models_two_batches_two_precisions() -> None:
    runs = configs("cuda", quick=False)
    assert {(c.model, c.precision) for c in runs} == {
        (m, p) for m in ("alexnet", "vgg11", "resnet50") for p in ("fp32", "fp16")
    }
    assert len(runs) == 12 and all(c.image_size == 224 and c.iterations == 25 for c in runs)


def test_an_unknown_gpu_fails_before_any_training(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--device", "cpu", "--quick", "--gpu", "Z9000"]) != 0
    out, err = capsys.readouterr()
    assert "Z9000" in err and "H100" in err and out == ""


def test_a_cuda_run_also_prints_what_the_memory_model_estimates() -> None:
    """The CUDA-only table, from a record shaped as a CUDA run's (no GPU here)."""
    from cherrypick.perfmodel.gpu_check import format_report

    memory = {
        "what": "torch.cuda.max_memory_allocated",
        "predicted": 12.0e9,
        "measured": 10.0e9,
        "predicted_total": 13.9e9,
        "measured_total": 12.0e9,
        "predicted_slack": 0.1,
        "measured_slack": 0.05,
        "predicted_beyond_pytorch": 4.2e8,
        "measured_beyond_pytorch": 5.0e8,
        "activations": {"what": "autograd", "predicted": 9.0e9, "measured": 9.1e9},
    }
    target = {
        "gpu": "A100",
        "roofline_ms": 90.0,
        "calibrated_ms": 120.0,
        "fit_probability": 0.98,
        "layers_ms": [100.0, 20.0],
    }
    run = {
        "model": "resnet50",
        "batch_size": 256,
        "precision": "fp16",
        "status": "ok",
        "iteration_ms": {
            "predicted": 80.0,
            "measured": 100.0,
            "calibrated": 99.0,
            "measured_data_wait": 0.5,
        },
        "memory": memory,
        "targets": [target],
        "layers": [{"name": "conv1", "measured_ms": 70.0}, {"name": "loss", "measured_ms": 1.0}],
    }
    failed = {"model": "vgg11", "batch_size": 128, "precision": "fp32", "status": "oom"}
    failed["message"] = "CUDA out of memory"
    lines = format_report({"device_name": "NVIDIA H100", "gpu": "H100", "runs": [run, failed]})
    assert lines[-1].split() == [
        "resnet50", "b256", "fp16", "9000", "9100", "10.0%", "5.0%", "420", "500", "13900",
        "12000", "+16%",
    ]  # fmt: skip
    assert "vgg11 b128 fp32        oom: CUDA out of memory" in lines
    assert "resnet50 b256 fp16     A100        90.00        120.00     0.98" in lines
