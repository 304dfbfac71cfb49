"""``python -m cherrypick.workloads.cnn.train``: the result file, its fixed keys, the exit codes."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _tiny import tiny_train_args
from cherrypick.workloads.base import BREAKDOWN_KEYS
from cherrypick.workloads.cnn.train import EXIT_CODES, main

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny_train_args()


def _train(tmp_path: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    output = tmp_path / "result.json"
    code = main([*TINY, *argv, "--output", str(output)])
    return code, json.loads(output.read_text())


def test_ok_run_writes_every_fixed_key(tmp_path: Path) -> None:
    code, result = _train(tmp_path, "--model", "resnet18")
    assert code == 0 and result["status"] == "ok" and result["schema_version"] == 1
    assert set(result["breakdown_ms"]) == set(BREAKDOWN_KEYS)
    assert result["iteration_ms"] == result["iterations"]["steady"]["median_ms"]
    assert result["throughput_images_s"] == pytest.approx(4000 / result["iteration_ms"])
    job = result["job"]
    assert job["iterations"] == 16  # one epoch of 64 samples at batch 4
    assert result["projected_job_seconds"] == pytest.approx(
        result["startup_seconds"] + 16 * result["iteration_ms"] / 1000
    )
    assert result["iterations"]["profiled"] == [2, 4, 6]
    names = [row["name"] for row in result["layers"]]
    assert names[0] == "conv1" and names[-2:] == ["fc", "loss"]
    for row in result["layers"]:
        assert {
            "name",
            "forward_ms",
            "backward_ms",
            "forward_flops",
            "backward_flops",
            "bytes",
        } <= set(row)
        assert row["forward_p50_ms"] <= row["forward_p90_ms"]
    env = result["environment"]
    assert env["device"] == "cpu" and env["world_size"] == 1 and env["torch"]
    assert result["memory"]["peak_host_rss_bytes"] > 0
    assert result["loss"]["first"] > 0 and len(result["iterations"]["wall_ms"]) == 8


def test_config_file_with_flag_override(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("model: vgg11\nbatch_size: 2\nlr: 0.05\n")
    code, result = _train(tmp_path, "--config", str(config))
    assert code == 0
    assert (result["config"]["model"], result["config"]["batch_size"]) == ("vgg11", 4)
    assert result["config"]["lr"] == 0.05


def test_bad_config_exits_2_with_an_error_result(tmp_path: Path) -> None:
    code, result = _train(tmp_path, "--model", "lenet")
    assert code == EXIT_CODES["config"] == 2
    assert result["status"] == "error" and "unknown model 'lenet'" in result["message"]
    assert result["projected_job_seconds"] is None and result["layers"] == []


def test_fp16_on_cpu_is_a_config_error(tmp_path: Path) -> None:
    code, result = _train(tmp_path, "--device", "cpu", "--precision", "fp16")
    assert code == 2 and "fp16 needs a CUDA device" in result["message"]


def test_out_of_host_memory_exits_3_with_an_oom_result(tmp_path: Path) -> None:
    # Weights of several terabytes, in a process whose address space is capped: the allocator
    # refuses them at once, whatever the kernel's overcommit policy.
    output = tmp_path / "result.json"
    command = [sys.executable, "-m", "cherrypick.workloads.cnn.train", *TINY, "--model", "vgg11"]
    done = subprocess.run(
        [*command, "--width", "2000", "--output", str(output)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30)),
        capture_output=True,
        timeout=120,
    )
    result = json.loads(output.read_text())
    assert done.returncode == EXIT_CODES["oom"] == 3
    assert result["status"] == "oom" and "allocate" in result["message"]


def test_a_crash_exits_4_with_the_message(tmp_path: Path) -> None:
    broken = tmp_path / "data" / "cat"
    broken.mkdir(parents=True)
    for n in range(4):
        (broken / f"{n}.jpg").write_bytes(b"not a jpeg")
    code, result = _train(tmp_path, "--data", str(broken.parent))
    assert code == EXIT_CODES["error"] == 4
    assert result["status"] == "error" and "UnidentifiedImageError" in result["message"]


def test_no_profile_has_phases_but_no_layer_times(tmp_path: Path) -> None:
    code, result = _train(tmp_path, "--no-profile", "--model", "alexnet", "--image-size", "64")
    assert code == 0 and result["profile"]["enabled"] is False
    assert result["profile"]["breakdown_from"] == "phases"
    assert result["iterations"]["profiled"] == []
    assert all(row["forward_ms"] is None for row in result["layers"])
    assert result["breakdown_ms"]["forward"] > 0


def test_bf16_and_channels_last_on_cpu(tmp_path: Path) -> None:
    code, result = _train(tmp_path, "--precision", "bf16", "--channels-last")
    assert code == 0 and result["config"]["precision"] == "bf16"
    assert result["layers"][0]["bytes"] < _train(tmp_path)[1]["layers"][0]["bytes"]
