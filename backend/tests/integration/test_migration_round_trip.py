"""Every migration can be undone: downgrade to nothing, upgrade to head, and the schema is whole again."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app.services.health import migration_head
from scripts.harness import REPO_ROOT
from scripts.topology import Topology

from .conftest import engine_for, own_topology

pytestmark = pytest.mark.slow

FUNCTIONS_RUNTIME_MAY_CALL = text(
    "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE n.nspname = 'public' AND has_function_privilege('app_user', p.oid, 'EXECUTE') "
    "AND (p.proname LIKE 'llm\\_%' OR p.proname LIKE 'webhook\\_intake\\_%') ORDER BY 1"
)


@pytest.fixture(scope="module")
def idle_topology(test_artifacts: Path) -> Iterator[Topology]:
    for topo in own_topology(test_artifacts, "migrations"):
        for service in ("api", "worker"):  # nothing may hold the tables while they are dropped
            topo.stop_service(service, grace_s=2)
        yield topo


def alembic(topo: Topology, *args: str) -> None:
    env = {**os.environ, **topo.operator_env}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_downgrade_to_nothing_and_back(idle_topology: Topology) -> None:
    assert idle_topology.dsns is not None
    owner = engine_for(idle_topology.dsns.migration)
    with owner.connect() as conn:
        before = conn.execute(FUNCTIONS_RUNTIME_MAY_CALL).scalars().all()
    alembic(idle_topology, "downgrade", "base")
    with owner.connect() as conn:
        assert conn.execute(FUNCTIONS_RUNTIME_MAY_CALL).scalars().all() == []
        assert conn.execute(text("SELECT to_regclass('public.outbox')")).scalar_one() is None
    alembic(idle_topology, "upgrade", "head")
    with owner.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == migration_head()
        assert conn.execute(FUNCTIONS_RUNTIME_MAY_CALL).scalars().all() == before
    owner.dispose()
    assert "webhook_intake_event" in before and "llm_route_admit" in before
