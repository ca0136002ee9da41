"""Every migration can be undone: downgrade to nothing, upgrade to head, and the schema is whole again."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, TextClause, text

from app.core.db import tenant_transaction_sync
from app.core.sealing import KEYS_ENV, PURPOSE_PLATFORM_API_KEY, PURPOSE_WEBHOOK_SECRET, key_ring
from app.core.tenancy import SET_LEGACY_CONTEXT_SQL, legacy_params
from app.monitoring.readiness import migration_head
from app.tenants.credentials import PLATFORM_API_KEYS, WEBHOOK_SECRETS
from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.harness import REPO_ROOT
from scripts.topology import Topology

from .conftest import engine_for, own_topology, superuser_dsn

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


def alembic_run(topo: Topology, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **topo.operator_env, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def alembic(topo: Topology, *args: str) -> None:
    result = alembic_run(topo, *args)
    assert result.returncode == 0, result.stderr[-2000:]


PLATFORM_KEY = "sk_live_kept_across_migrations"
PLAINTEXT_SQL = {
    "secret": text("SELECT secret FROM webhook_secrets"),
    "api_key": text("SELECT api_key FROM platform_connections"),
}


def stored(runtime: Engine, tenant: ProvisionedTenant, queries: dict[str, TextClause]) -> dict[str, list[str]]:
    """The tenant's rows in a database migrated below 0024, whose context is the unsigned ids."""
    with runtime.begin() as conn:
        conn.execute(SET_LEGACY_CONTEXT_SQL, legacy_params(tenant.context))
        return {name: list(conn.execute(query).scalars()) for name, query in queries.items()}


def in_data_files(superuser: Engine, needle: str) -> list[str]:
    """The tables whose data file (after a checkpoint) holds ``needle``: what a file-level backup copies."""
    found = []
    with superuser.connect() as conn:
        conn.execute(text("CHECKPOINT"))
        for table in ("webhook_secrets", "platform_connections"):
            path = conn.execute(text("SELECT pg_relation_filepath(CAST(:t AS regclass))"), {"t": table}).scalar_one()
            if needle.encode() in conn.execute(text("SELECT pg_read_binary_file(:p)"), {"p": path}).scalar_one():
                found.append(table)
    return found


def test_stored_credentials_are_sealed_and_restored_by_the_migration(idle_topology: Topology) -> None:
    """Rows written before 0018 are sealed by it (and opened again by its downgrade), nothing is
    lost, no ring means no change at all, and the data files keep no copy of the plaintext."""
    assert idle_topology.dsns is not None
    runtime = engine_for(idle_topology.dsns.runtime_sync)
    superuser = engine_for(superuser_dsn(idle_topology))
    with runtime.begin() as conn:
        tenant = create_tenant(conn, "migrated")
    sealed_key = key_ring().seal(PLATFORM_KEY, tenant.tenant_id, PURPOSE_PLATFORM_API_KEY)
    with tenant_transaction_sync(tenant.context, runtime) as conn:
        conn.execute(
            text("INSERT INTO platform_connections (tenant_id, platform, api_key_sealed) VALUES (:t, 'stripe', :k)"),
            {"t": tenant.tenant_id, "k": sealed_key},
        )
    alembic(idle_topology, "downgrade", "0017")
    plain = {"secret": [tenant.webhook_secret], "api_key": [PLATFORM_KEY]}
    restored = stored(runtime, tenant, PLAINTEXT_SQL) == plain  # compared aside: a failure shows no secret
    assert restored
    assert in_data_files(superuser, tenant.webhook_secret) == ["webhook_secrets"]  # control: the scan finds it

    refused = alembic_run(idle_topology, "upgrade", "head", **{KEYS_ENV: ""})
    assert refused.returncode != 0 and f"{KEYS_ENV} is not set" in refused.stderr
    with superuser.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0017"
    untouched = stored(runtime, tenant, PLAINTEXT_SQL) == plain
    assert untouched

    alembic(idle_topology, "upgrade", "head")
    ring = key_ring()
    with tenant_transaction_sync(tenant.context, runtime) as conn:
        [secret] = conn.execute(text(f"SELECT {WEBHOOK_SECRETS.column} FROM {WEBHOOK_SECRETS.table}")).scalars()
        [api_key] = conn.execute(text(f"SELECT {PLATFORM_API_KEYS.column} FROM {PLATFORM_API_KEYS.table}")).scalars()
    sealed_as_stored = ring.open(secret, tenant.tenant_id, PURPOSE_WEBHOOK_SECRET) == tenant.webhook_secret
    assert sealed_as_stored and ring.open(api_key, tenant.tenant_id, PURPOSE_PLATFORM_API_KEY) == PLATFORM_KEY
    assert in_data_files(superuser, tenant.webhook_secret) == [] and in_data_files(superuser, PLATFORM_KEY) == []
    runtime.dispose()
    superuser.dispose()


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
