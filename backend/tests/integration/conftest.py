"""Integration tests run against the live topology (fixtures in ../conftest.py); all are marked."""

from __future__ import annotations

import pytest

from ..conftest import TEST_STOP_GRACE_S, TwoTenants, engine_for, own_topology

__all__ = ["TEST_STOP_GRACE_S", "TwoTenants", "engine_for", "own_topology"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
