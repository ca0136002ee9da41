"""A relay that stops working is seen: its heartbeat goes stale and the worker probe fails naming it,
work waiting to be sent fails readiness once it is older than the setting, /metrics shows the
backlog and its age, and both recover when the relay does. The fault: every relay pass failing
(its function made uncallable for the runtime role), the way a broken deploy or a lost grant would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.core.db import tenant_transaction_sync
from app.tenants.service import create_tenant
from scripts.harness import poll_until
from scripts.topology import Topology

from .conftest import engine_for, own_topology

pytestmark = pytest.mark.slow

STALE_AFTER_S, MAX_PENDING_AGE_S = 2, 3


@pytest.fixture(scope="module")
def relay_topology(test_artifacts: Path) -> Iterator[Topology]:
    yield from own_topology(
        test_artifacts,
        "relay-health",
        OUTBOX_RELAY_STALE_AFTER_S=str(STALE_AFTER_S),
        OUTBOX_MAX_PENDING_AGE_S=str(MAX_PENDING_AGE_S),
        WORKER_PROBE_CACHE_S="0",
    )


def worker_health(topology: Topology) -> httpx.Response:
    return httpx.get(f"{topology.api_url}/health/worker", params={"fresh": "true"}, timeout=20)


def ready(topology: Topology) -> httpx.Response:
    return httpx.get(f"{topology.api_url}/health/ready", timeout=20)


def metric(topology: Topology, name: str) -> float:
    lines = httpx.get(f"{topology.api_url}/metrics", timeout=20).text.splitlines()
    return float(next(line.split()[-1] for line in lines if line.startswith(f"{name} ")))


def test_a_failing_relay_fails_the_probes_and_recovers(relay_topology: Topology) -> None:
    assert relay_topology.dsns is not None
    url = relay_topology.api_url
    healthy = poll_until(f"{url}/health/worker?fresh=true", timeout_s=30)
    assert healthy.ok, healthy.last_body
    assert healthy.last_body["checks"]["outbox_relay"]["ok"] is True  # control: a live relay passes
    owner, runtime = engine_for(relay_topology.dsns.migration), engine_for(relay_topology.dsns.runtime_sync)
    revoke = "REVOKE EXECUTE ON FUNCTION outbox_claim(integer, double precision) FROM app_user"
    with owner.begin() as conn:
        conn.execute(text(revoke))
    try:
        with runtime.begin() as conn:
            tenant = create_tenant(conn, "relay-stuck")
        with tenant_transaction_sync(tenant.context, runtime) as conn:  # work that now waits to be sent
            conn.execute(
                text("INSERT INTO outbox (tenant_id, kind) VALUES (:t, 'attribution_recompute')"),
                {"t": tenant.tenant_id},
            )
        stale = poll_until(
            f"{url}/health/worker?fresh=true", timeout_s=30, ready=lambda r: r.status_code == 503, interval_s=0.5
        )
        assert stale.ok, stale.last_body
        relay = stale.last_body["checks"]["outbox_relay"]
        assert stale.last_body["failed"] == ["outbox_relay"]
        assert relay["beat_age_s"] > STALE_AFTER_S and "permission denied" in relay["last_error"]
        backlog = poll_until(f"{url}/health/ready", timeout_s=30, ready=lambda r: r.status_code == 503, interval_s=0.5)
        assert backlog.ok and backlog.last_body["failed"] == ["outbox"], backlog.last_body
        assert metric(relay_topology, "outbox_pending") >= 1
        assert metric(relay_topology, "outbox_oldest_pending_age_seconds") > MAX_PENDING_AGE_S
    finally:
        with owner.begin() as conn:
            conn.execute(text(revoke.replace("REVOKE", "GRANT").replace(" FROM ", " TO ")))
        owner.dispose()
        runtime.dispose()
    assert poll_until(f"{url}/health/worker?fresh=true", timeout_s=30, interval_s=0.5).ok
    assert poll_until(f"{url}/health/ready", timeout_s=30, interval_s=0.5).ok
