"""No acknowledged event is left unscheduled: the relay retries a failing broker, re-sends work whose
message vanished, and times out jobs whose worker vanished. Faults are injected in the real database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.topology import Topology

from .conftest import engine_for, own_topology
from .webhook_client import eventually, post_webhook

pytestmark = pytest.mark.slow

TOUCH = {"customer_id": "c1", "channel": "search", "occurred_at": "2026-11-01T10:00:00Z"}


@pytest.fixture(scope="module")
def durable(test_artifacts: Path) -> Iterator[Topology]:
    yield from own_topology(test_artifacts, "durability", OUTBOX_REDISPATCH_AFTER_S="1", OUTBOX_RELAY_INTERVAL_S="0.1")


@pytest.fixture(scope="module")
def engines(durable: Topology) -> Iterator[tuple[Engine, Engine]]:
    assert durable.dsns is not None
    runtime, owner = engine_for(durable.dsns.runtime_sync), engine_for(durable.dsns.migration)
    yield runtime, owner
    runtime.dispose()
    owner.dispose()


@pytest.fixture
def tenant(engines: tuple[Engine, Engine]) -> ProvisionedTenant:
    with engines[0].begin() as conn:
        return create_tenant(conn, f"durable-{uuid.uuid4().hex[:6]}")


def outbox_state(engine: Engine, tenant: ProvisionedTenant) -> dict[str, int]:
    with tenant_transaction_sync(tenant.context, engine) as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE dispatched_at IS NULL) AS pending, "
                "count(*) FILTER (WHERE completed_at IS NOT NULL) AS completed, count(*) AS total FROM outbox"
            )
        ).one()
    return {"pending": row.pending, "completed": row.completed, "total": row.total}


def test_broker_write_failure_is_retried(
    durable: Topology, engines: tuple[Engine, Engine], tenant: ProvisionedTenant
) -> None:
    runtime, owner = engines
    with owner.begin() as conn:  # the broker refuses writes: kombu's INSERT fails for app_user
        conn.execute(text("REVOKE INSERT ON kombu_message FROM app_rw"))
    try:
        with httpx.Client(base_url=durable.api_url, timeout=15) as api:
            response = post_webhook(api, "touchpoints", tenant, {**TOUCH, "event_id": "tp-broker-down"})
        assert response.status_code == 202  # acknowledged: event and outbox row are committed
        eventually(lambda: outbox_state(runtime, tenant)["total"] == 1, timeout_s=5)
        relay_log = durable.processes["worker"].log_path  # the relay runs in the worker (app.outbox.relay_step)
        eventually(lambda: "relay pass failed" in relay_log.read_text(), timeout_s=10)  # passes fail meanwhile
        assert outbox_state(runtime, tenant) == {"pending": 1, "completed": 0, "total": 1}
    finally:
        with owner.begin() as conn:
            conn.execute(text("GRANT INSERT ON kombu_message TO app_rw"))
    eventually(lambda: outbox_state(runtime, tenant)["completed"] == 1, timeout_s=30)


def test_vanished_message_is_sent_again(
    durable: Topology, engines: tuple[Engine, Engine], tenant: ProvisionedTenant
) -> None:
    runtime, _ = engines
    with tenant_transaction_sync(tenant.context, runtime) as conn:  # dispatched, but no message exists
        conn.execute(
            text(
                "INSERT INTO outbox (tenant_id, kind, dispatched_at, attempts) "
                "VALUES (:t, 'attribution_recompute', now() - interval '1 minute', 1)"
            ),
            {"t": tenant.tenant_id},
        )
    eventually(lambda: outbox_state(runtime, tenant)["completed"] == 1, timeout_s=30)
    with tenant_transaction_sync(tenant.context, runtime) as conn:
        attempts, note = conn.execute(text("SELECT attempts, last_error FROM outbox")).one()
    assert attempts == 2 and "sent again" in note


def test_job_whose_worker_vanished_times_out_with_fallback(
    engines: tuple[Engine, Engine], tenant: ProvisionedTenant
) -> None:
    runtime, _ = engines
    with tenant_transaction_sync(tenant.context, runtime) as conn:
        job_id = conn.execute(
            text(
                "INSERT INTO attribution_jobs (tenant_id, model, status, started_at, deadline_at) "
                "VALUES (:t, 'bayesian', 'running', now() - interval '10 minutes', now() - interval '1 minute') RETURNING id"
            ),
            {"t": tenant.tenant_id},
        ).scalar_one()

    def finished() -> tuple[str, str] | None:
        with tenant_transaction_sync(tenant.context, runtime) as conn:
            row = conn.execute(
                text("SELECT status, fallback_event FROM attribution_jobs WHERE id = :j"), {"j": job_id}
            ).one()
        return (row.status, row.fallback_event) if row.status != "running" else None

    assert eventually(finished, timeout_s=20) == ("timed_out", "deterministic_last_touch")
