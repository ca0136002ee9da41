"""/metrics shows why calls are blocked and what the system is doing, and agrees with the database."""

from __future__ import annotations

import re
import uuid

import httpx
from celery import Celery
from sqlalchemy import Engine, text

from app.tenants.service import create_tenant
from scripts.bench.llm_calls import mock_boundary
from scripts.topology import Topology


def sample(body: str, name: str, **labels: str) -> float:
    """The value of one series; fails if it is absent."""
    selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}{{{re.escape(selector)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    found = re.search(pattern, body, re.M)
    assert found, f"{name}{{{selector}}} not in /metrics"
    return float(found.group(1))


def test_metrics_explain_outcomes_and_match_the_ledger(
    api: httpx.Client, topology: Topology, runtime_engine: Engine, ops_engine: Engine
) -> None:
    assert topology.dsns is not None
    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, f"metrics-{uuid.uuid4().hex[:6]}")
    blocked = mock_boundary(topology.dsns.runtime_sync, topology.mock_url, env_kill_switch=True)
    for n in range(2):
        assert blocked.call(tenant.context, "route", f"metrics-kill-{n}", "x").blocked_reason == "provider_kill_switch"
    api.get("/health/live")
    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    body = response.text
    with ops_engine.connect() as conn:
        killed = conn.execute(
            text("SELECT count(*) FROM llm_api_calls WHERE blocked_reason = 'provider_kill_switch'")
        ).scalar_one()
    assert sample(body, "llm_calls_total", status="blocked", reason="provider_kill_switch") == killed >= 2
    assert sample(body, "llm_kill_switch_enabled") == 0
    assert 0 <= sample(body, "llm_budget_used_ratio") <= 1
    assert 0 <= sample(body, "llm_cache_hit_ratio") <= 1
    assert sample(body, "http_request_duration_seconds_count", method="GET", route="/health/live", status="200") >= 1
    assert "llm_breaker_open" in body and "webhook_dead_letters" in body


def test_queue_depth_counts_the_messages_waiting(api: httpx.Client, topology: Topology) -> None:
    """Three messages on a queue no worker consumes: the depth is exactly three. (The working queues
    move while a scrape is compared with a count taken after it; this one holds still.)"""
    queue = f"metrics-probe-{uuid.uuid4().hex[:8]}"
    client = Celery("metrics-probe", broker=topology.operator_env["CELERY_BROKER_URL"])
    try:
        for _ in range(3):
            client.send_task("metrics.never_run", queue=queue)
    finally:
        client.close()
    assert sample(api.get("/metrics").text, "broker_queue_depth", queue=queue) == 3
