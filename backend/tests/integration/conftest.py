"""Integration tests run against the live topology (fixtures in ../conftest.py); all are marked."""

from __future__ import annotations

import pytest

from scripts.topology import Topology

from ..conftest import TEST_STOP_GRACE_S, TwoTenants, engine_for, own_topology

__all__ = ["TEST_STOP_GRACE_S", "TwoTenants", "engine_for", "own_topology", "superuser_dsn"]


def superuser_dsn(topology: Topology, database: str | None = None) -> str:
    """The cluster's bootstrap superuser, in the topology's database unless another is named: for
    controls that give back a right, and for reading everything as a dump or a backup would."""
    return topology.superuser_url(database)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
