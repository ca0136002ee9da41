"""Shared test configuration: where test runs put their artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.harness import REPO_ROOT


@pytest.fixture(scope="session")
def test_artifacts() -> Path:
    path = REPO_ROOT / "artifacts" / "tests"
    path.mkdir(parents=True, exist_ok=True)
    return path
