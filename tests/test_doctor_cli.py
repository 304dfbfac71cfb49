"""``cherrypick doctor`` as a user runs it: over moto's AWS (credentials accepted or refused, a GPU
quota too small), with a cloud's SDK missing, and with a bad search file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from cherrypick.providers.base import provider_registry
from fake_aws import AwsHarness, harness

from cherrypick import cli


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    with harness() as made:
        monkeypatch.setitem(
            provider_registry._factories, "aws", lambda *args, **kwargs: made.provider
        )
        yield made


def doctor(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = cli.main(["doctor", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def a10g_search(tmp_path: Path) -> Path:
    path = tmp_path / "search.yaml"
    spec = {
        "workload": {"name": "cnn", "params": {"model": "resnet18"}},
        "objective": {"kind": "cost"},
        "filters": {"providers": ["aws"], "regions": ["us-east-1"], "gpus": ["A10G"]},
    }
    path.write_text(json.dumps(spec))
    return path


def test_accepted_credentials_and_enough_quota_pass(
    aws: AwsHarness, capsys: Any, tmp_path: Path
) -> None:
    aws.quotas[("us-east-1", "L-DB2E81BA")] = 192.0  # g5.48xlarge, the largest A10G machine
    code, out, _ = doctor(capsys, str(a10g_search(tmp_path)))
    lines = out.splitlines()
    assert code == 0, out
    assert lines[0].startswith("ok      aws    credentials:") and "123456789012" in lines[0]
    assert lines[1:-1] == [
        "ok      aws    quota L-DB2E81BA in us-east-1: 'Running On-Demand G and VT instances':"
        " 192 vCPUs; the largest offering needs 192"
    ]
    assert lines[-1] == "2 of 2 checks passed"


def test_a_quota_too_small_for_the_files_offerings_is_missing_with_its_fix(
    aws: AwsHarness, capsys: Any, tmp_path: Path
) -> None:
    aws.quotas[("us-east-1", "L-DB2E81BA")] = 8.0  # G and VT: 8 vCPUs, g5.12xlarge needs 48
    code, out, _ = doctor(capsys, str(a10g_search(tmp_path)))
    assert code == 1, out
    missing = [line for line in out.splitlines() if line.startswith("MISSING")]
    assert missing == [line for line in missing if "L-DB2E81BA in us-east-1" in line]
    assert len(missing) == 1 and "8 vCPUs; the largest offering needs 192" in missing[0]
    assert "aws service-quotas request-service-quota-increase" in out
    assert "us-west-2" not in out  # the file's region only


def test_refused_credentials_are_missing_with_how_to_configure_them(
    aws: AwsHarness, capsys: Any
) -> None:
    aws.sts_error = "InvalidClientTokenId"
    code, out, err = doctor(capsys, "--provider", "aws")
    assert code == 1 and err == ""
    assert out.startswith("MISSING aws    credentials:") and "InvalidClientTokenId" in out
    assert "fix: configure credentials: `aws configure`" in out
    assert out.splitlines()[-1] == "0 of 1 checks passed"


def test_a_missing_sdk_names_the_extra_that_installs_it(
    capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "googleapiclient" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    code, out, _ = doctor(capsys, "--provider", "gcp")
    assert code == 1
    assert "MISSING gcp    SDK: googleapiclient is not installed" in out
    assert "fix: pip install 'cherrypick[gcp]'" in out


def test_a_bad_search_file_is_an_input_error_without_a_traceback(
    capsys: Any, tmp_path: Path
) -> None:
    path = tmp_path / "search.yaml"
    path.write_text("workload: {name: cnn}\nfilters: {max_nodes: 0}\n")
    code, out, err = doctor(capsys, str(path))
    assert code == 2 and out == ""
    assert str(path) in err and "max_nodes" in err and "Traceback" not in err
