"""The CNN workload as a search sees it: parameters, commands, results, simulation profile."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cherrypick.providers.base import Candidate, Offering
from cherrypick.workloads import create_workload
from cherrypick.workloads.cnn import CNNWorkload

from cherrypick.errors import UnknownNameError, ValidationError

ROOT = Path(__file__).resolve().parents[1]
GPU4 = Offering("aws", "us-east-1", "p3.8xlarge", 32, 244, "V100", 4, 16, "nvlink", 12.24)
GPU1 = Offering("aws", "us-east-1", "g5.xlarge", 4, 16, "A10G", 1, 24, "pcie", 1.0)
CPU = Offering("aws", "us-east-1", "c5.4xlarge", 16, 32, "", 0, 0, "", 0.68)


def _ok(**changes: object) -> bytes:
    result = {"schema_version": 1, "status": "ok", "message": "", "projected_job_seconds": 3600.0}
    return json.dumps({**result, **changes}).encode()


def test_unknown_model_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="alexnet, resnet18, resnet50, vgg11, vgg16"):
        create_workload("cnn", {"model": "vgg19"})


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"batch": 32}, "batch"),
        ({"batch_size": "32"}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"precision": "fp8"}, "precision"),
        ({"install": ""}, "install"),
    ],
)
def test_bad_params_name_their_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        create_workload("cnn", params)
    assert caught.value.field == field
    assert str(caught.value).startswith("workload 'cnn'")


def test_single_gpu_runs_plain_python_with_the_config_as_a_file() -> None:
    workload = CNNWorkload({"model": "resnet50", "batch_size": 32})
    command = workload.command(Candidate(GPU1), 0, "10.0.0.1", 29500)
    assert "torch.distributed.run" not in command
    assert command.endswith(
        f"-m cherrypick.workloads.cnn.train --config run/run.yaml --output {workload.result_path}"
    )
    written = shlex.split(command.split(" > ")[0])[-1]
    assert json.loads(written)["device"] == "cuda"
    assert json.loads(written)["model"] == "resnet50"


def test_a_device_the_user_names_is_kept_on_a_gpu_machine() -> None:
    command = CNNWorkload({"device": "cpu"}).command(Candidate(GPU1), 0, "10.0.0.1", 29500)
    written = shlex.split(command.split(" > ")[0])[-1]
    assert json.loads(written)["device"] == "cpu"


def test_multi_node_gpus_use_torchrun_with_rank_and_master() -> None:
    command = CNNWorkload({}).command(Candidate(GPU4, nodes=2), 1, "10.0.0.1", 29500)
    launcher = command.split(" && ", 1)[1]
    for flag in (
        "--nnodes 2",
        "--nproc-per-node 4",
        "--node-rank 1",
        "--master-addr 10.0.0.1",
        "--master-port 29500",
    ):
        assert flag in launcher


def test_cpu_only_nodes_train_on_cpu_one_process_per_node() -> None:
    single = CNNWorkload({}).command(Candidate(CPU), 0, "h", 1)
    assert '"device": "cpu"' in single and "torch.distributed.run" not in single
    multi = CNNWorkload({}).command(Candidate(CPU, nodes=3), 2, "h", 1)
    assert "--nnodes 3 --nproc-per-node 1 --node-rank 2" in multi


def test_setup_installs_torch_only_where_the_image_has_none(tmp_path: Path) -> None:
    workload = CNNWorkload({"install": "torch>=2; touch pwned", "python": "python3.11"})
    (command,) = workload.setup_commands()
    assert command.startswith("python3.11 -c ")
    assert command.endswith(" || python3.11 -m pip install --quiet 'torch>=2; touch pwned'")
    # Run for real with an interpreter that has torch: nothing is installed, nothing injected.
    here = CNNWorkload({"python": sys.executable})
    done = subprocess.run(
        ["bash", "-c", here.setup_commands()[0]], cwd=tmp_path, capture_output=True, check=False
    )
    assert done.returncode == 0 and done.stdout == b"" and not (tmp_path / "pwned").exists()


def test_result_path_is_inside_the_trial_folder() -> None:
    workload = CNNWorkload({})
    assert not workload.result_path.startswith("/")
    command = workload.command(Candidate(CPU), 0, "h", 1)
    assert f"--output {workload.result_path}" in command


def test_parse_ok_oom_and_malformed_results() -> None:
    workload = CNNWorkload({})
    ok = workload.parse_result(_ok())
    assert (ok.status, ok.runtime_s) == ("ok", 3600.0)
    oom = workload.parse_result(
        _ok(status="oom", message="CUDA out of memory", projected_job_seconds=None)
    )
    assert (oom.status, oom.runtime_s, oom.message) == ("oom", None, "CUDA out of memory")
    for raw, why in [
        (b"{", "not JSON"),
        (b"[1]", "not a JSON object"),
        (_ok(schema_version=2), "unsupported schema_version 2"),
        (_ok(status="done"), "unknown status"),
        (_ok(projected_job_seconds=None), "projected_job_seconds is None"),
        (b"\xff\xfe", "not JSON"),
    ]:
        parsed = workload.parse_result(raw)
        assert parsed.status == "error" and why in parsed.message, parsed


def test_simulation_profile_of_resnet50_without_importing_torch() -> None:
    code = (
        "import sys, json\n"
        "from cherrypick.workloads import create_workload\n"
        "p = create_workload('cnn', {'model': 'resnet50', 'batch_size': 64}).simulation_profile()\n"
        "print(json.dumps([p.parameter_count, p.forward_flops, len(p.layers), p.samples_per_epoch,"
        " 'torch' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    params, flops, layers, samples, torch_loaded = json.loads(out.stdout)
    assert params == 25_557_032  # torchvision's ResNet-50
    assert flops == pytest.approx(64 * 2 * 4.089e9, rel=1e-3)  # 4.09 GMAC per image
    assert (layers, samples, torch_loaded) == (19, 1_281_167, False)


def test_profile_carries_calibration_from_a_result(tmp_path: Path) -> None:
    result = {
        "status": "ok",
        "environment": {"device_name": "cpu"},
        "config": {},
        "iteration_ms": 10.0,
        "breakdown_ms": {},
        "layers": [{"name": "conv1", "forward_ms": 1.0, "backward_ms": 2.0, "bytes": 9}],
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    profile = CNNWorkload({"model": "alexnet", "calibration": str(path)}).simulation_profile()
    assert profile.calibration is not None
    assert profile.calibration["layers"] == [
        {"name": "conv1", "forward_ms": 1.0, "backward_ms": 2.0}
    ]


def test_folder_data_needs_a_dataset_size_to_simulate() -> None:
    with pytest.raises(ValidationError, match="dataset_size"):
        CNNWorkload({"data": "/data/imagenet/train"}).simulation_profile()
    sized = CNNWorkload({"data": "/data/imagenet/train", "dataset_size": 1000})
    assert sized.simulation_profile().data == "folder"


def test_progress_is_read_from_the_runs_own_output(tmp_path: Path) -> None:
    from _tiny import tiny_train_args

    workload = CNNWorkload({})
    assert workload.progress("loading\n") is None
    done = subprocess.run(
        [sys.executable, "-m", "cherrypick.workloads.cnn.train", *tiny_train_args(iterations=6)]
        + ["--model", "resnet18", "--output", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert workload.progress(done.stdout) == "iteration 6 of 6"
    partial = done.stdout.split("iteration 4 of 6")[0]  # as a poll mid-run sees it
    assert workload.progress(partial) == "iteration 3 of 6"
