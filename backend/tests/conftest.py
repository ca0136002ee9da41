"""Fixtures every test may use: artifacts, and the live topology with its engines and tenants.

Integration tests live in integration/ (marked automatically); a test elsewhere that needs the
topology asks for the ``topology`` fixture and marks itself ``integration``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from app.core.sealing import KEYS_ENV, new_key_ring
from app.core.settings import to_sync_url
from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.harness import REPO_ROOT
from scripts.topology import Topology, TopologyConfig


@pytest.fixture(scope="session")
def test_artifacts() -> Path:
    path = REPO_ROOT / "artifacts" / "tests"
    path.mkdir(parents=True, exist_ok=True)
    return path


ATTACH_ENV = "E2E_ATTACH_TOPOLOGY"
# One key ring per test process: every topology it brings up takes it from the environment, and the
# tests seal and open credentials with it as api and worker do.
os.environ.setdefault(KEYS_ENV, new_key_ring())
# Test topologies need no graceful worker drain at the end (durability lives in our own tables, and
# the lifecycle tests cover the default path); this saves the worker's 6-8 s warm shutdown each time.
TEST_STOP_GRACE_S = 2.0


def run_name(base: str) -> str:
    """Topology names are unique per pytest-xdist worker, so parallel workers never share state files."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return f"{base}-{worker}" if worker else base


@pytest.fixture(scope="session")
def topology(test_artifacts: Path) -> Iterator[Topology]:
    """A fresh topology per session, or (with E2E_ATTACH_TOPOLOGY=<name>) the running one of that name,
    which is how the Phase 8 gates run these tests inside the composed topology they brought up."""
    attach = os.environ.get(ATTACH_ENV)
    if attach:
        attached = Topology.attach(attach)
        os.environ[KEYS_ENV] = attached.key_ring  # tests seal and open credentials as the api does
        yield attached
        return
    with Topology(
        TopologyConfig(
            artifact_dir=test_artifacts / run_name("topology"), name=run_name("pytest"), stop_grace_s=TEST_STOP_GRACE_S
        )
    ) as topo:
        yield topo


def engine_for(url: str, **kwargs: object) -> Engine:
    return create_engine(to_sync_url(url), **kwargs)  # type: ignore[arg-type]


def disposed_after(url: str, **kwargs: object) -> Iterator[Engine]:
    engine = engine_for(url, **kwargs)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def one_connection_pool(url: str) -> Iterator[Engine]:
    """An engine whose pool holds one connection: each checkout gets the same session back."""
    yield from disposed_after(url, pool_size=1, max_overflow=0)


@pytest.fixture(scope="session")
def runtime_engine(topology: Topology) -> Iterator[Engine]:
    assert topology.dsns is not None
    yield from disposed_after(topology.dsns.runtime_sync)


@pytest.fixture(scope="session")
def ops_engine(topology: Topology) -> Iterator[Engine]:
    assert topology.dsns is not None
    yield from disposed_after(topology.dsns.ops)


@pytest.fixture(scope="session")
def admin_engine(topology: Topology) -> Iterator[Engine]:
    """ops_admin (BYPASSRLS): what only operators may change, such as budgets and the kill switch.
    Say which tenant a statement is for: this role sees every tenant's rows."""
    assert topology.dsns is not None
    yield from disposed_after(topology.dsns.ops_admin)


@pytest.fixture(scope="session")
def owner_engine(topology: Topology) -> Iterator[Engine]:
    """The schema owner (migrations' role): for what the runtime may not do, such as ANALYZE."""
    assert topology.dsns is not None
    yield from disposed_after(topology.dsns.migration)


TEXT_COLUMNS = text(
    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
    "AND data_type IN ('text', 'character varying', 'character', 'jsonb', 'json')"
)


def stored_text(engine: Engine) -> Iterator[tuple[str, str]]:
    """Every non-null text or JSON value in every table, as (table.column, value). Use a BYPASSRLS engine."""
    with engine.connect() as conn:
        columns = conn.execute(TEXT_COLUMNS).all()
        assert len(columns) > 20, "the scan must cover the whole schema"
        for table, column in columns:
            query = text(f'SELECT "{column}"::text FROM "{table}" WHERE "{column}" IS NOT NULL')
            for value in conn.execute(query).scalars():
                yield f"{table}.{column}", value


def own_topology(test_artifacts: Path, name: str, **extra_env: str) -> Iterator[Topology]:
    """A module's own topology, for tests that stop services or change timing settings."""
    config = TopologyConfig(
        artifact_dir=test_artifacts / run_name(f"topology-{name}"),
        name=run_name(f"pytest-{name}"),
        stop_grace_s=TEST_STOP_GRACE_S,
        extra_env=extra_env,
    )
    with Topology(config) as topo:
        yield topo


@dataclass
class TwoTenants:
    a: ProvisionedTenant
    b: ProvisionedTenant


@pytest.fixture(scope="session")
def two_tenants(runtime_engine: Engine) -> TwoTenants:
    """Two tenants, each with one event row, provisioned through the runtime identity."""
    from sqlalchemy import text

    made = []
    for name in ("tenant-a", "tenant-b"):
        with runtime_engine.begin() as conn:
            tenant = create_tenant(conn, name)
            conn.execute(
                text(
                    "INSERT INTO attribution_events (tenant_id, platform, external_event_id, event_type, "
                    "occurred_at) VALUES (:t, 'stripe', :e, 'conversion', now())"
                ),
                {"t": tenant.tenant_id, "e": f"evt-{name}"},
            )
        made.append(tenant)
    return TwoTenants(*made)


@pytest.fixture
def api(topology: Topology) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=topology.api_url, timeout=15.0) as client:
        yield client
