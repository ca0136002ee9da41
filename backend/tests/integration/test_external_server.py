"""The same topology on an existing server given by URL (here: the machine's own PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from app.core.db import tenant_transaction_sync
from app.tenants.service import create_tenant
from scripts.topology import Topology, TopologyConfig

from .conftest import TEST_STOP_GRACE_S, engine_for

pytestmark = pytest.mark.slow

EXTERNAL_ADMIN_URL = os.environ.get("TEST_EXTERNAL_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def external_server_reachable() -> bool:
    try:
        psycopg.connect(EXTERNAL_ADMIN_URL, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


@pytest.mark.skipif(not external_server_reachable(), reason=f"no PostgreSQL superuser at {EXTERNAL_ADMIN_URL}")
def test_external_server_topology(test_artifacts: Path) -> None:
    config = TopologyConfig(
        artifact_dir=test_artifacts / "topology-external",
        name="pytest-external",
        admin_database_url=EXTERNAL_ADMIN_URL,
        stop_grace_s=TEST_STOP_GRACE_S,
    )
    with Topology(config) as topo:
        assert topo.dsns is not None and topo.embedded is None
        database = topo.database
        assert "127.0.0.1" in topo.dsns.runtime_sync
        engine = engine_for(topo.dsns.runtime_sync)
        try:
            with engine.begin() as conn:
                tenant = create_tenant(conn, "external")
            with engine.connect() as conn:
                assert conn.execute(text("SELECT current_user")).scalar_one() == "app_user"
                assert conn.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 0
            with tenant_transaction_sync(tenant.context, engine) as conn:
                assert conn.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 1
        finally:
            engine.dispose()
    with psycopg.connect(EXTERNAL_ADMIN_URL, autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (database,)).fetchone()
    assert left == (0,), "the run's database must be dropped after the run"
