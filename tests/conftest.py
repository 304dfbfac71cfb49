"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["sshd"]  # the real-sshd fixture of the runner tests (tests/sshd.py)


@pytest.fixture
def bundled_table() -> Path:
    return REPO / "configs" / "replay" / "spark-sql.csv"
