"""Two processes under torchrun on CPU (gloo): DistributedDataParallel and a merged result."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _tiny import tiny_train_args

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_ranks_train_with_gloo_and_rank0_merges(tmp_path: Path) -> None:
    output = tmp_path / "result.json"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "cherrypick.workloads.cnn.train",
        "--model",
        "resnet18",
        *tiny_train_args(sample_every=1),
        "--output",
        str(output),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["status"] == "ok"
    assert result["environment"]["world_size"] == 2
    assert result["environment"]["backend"] == "gloo"
    assert [rank["rank"] for rank in result["ranks"]] == [0, 1]
    assert result["job"]["global_batch"] == 8 and result["job"]["iterations"] == 8
    slowest = max(rank["iteration_ms"] for rank in result["ranks"])
    assert result["iteration_ms"] == slowest
    assert result["throughput_images_s"] == pytest.approx(8000 / slowest)
    for rank in result["ranks"]:
        communication = rank["breakdown_ms"]["communication"]
        # The last gradient bucket is reduced after the first layer's backward: a wait > 0.
        assert 0 < communication < rank["iteration_ms"]
    assert not output.with_name("result.json.partial").exists()
