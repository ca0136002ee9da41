"""Prometheus metrics: request latency from this process, and system state from PostgreSQL.

State that several processes share (LLM outcomes, breakers, budgets, webhook outcomes, queue depth)
is read from the database at scrape time, so every api replica reports the same truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

from app.core.db import async_engine
from app.maintenance import metrics as housekeeping_metrics

# The last worker probe's outcome in this api process (set by /health/worker), for alerting.
WORKER_PROBE_HEALTHY = Gauge("worker_probe_healthy", "1 when the last /health/worker probe passed, else 0")
WORKER_PROBE_AT = Gauge("worker_probe_last_run_timestamp_seconds", "unix time of the last /health/worker probe")

REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "api request latency",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Tenant tables are read across tenants only through app_system's functions (migration 0017): counts
# and sums, never rows. The LLM switches, breakers and broker queues belong to no tenant.
QUERIES = {
    "llm_outcomes": text("SELECT status, reason, n, cost FROM metrics_llm_outcomes()"),
    "breakers": text("SELECT provider, model, state FROM llm_breaker_state"),
    "kill_switch": text("SELECT enabled FROM llm_kill_switch WHERE id = 1"),
    "budget": text("SELECT spent, reserved, cap FROM metrics_budget()"),
    "events": text("SELECT platform, n FROM metrics_events()"),
    "dead_letters": text("SELECT reason_code, n FROM metrics_dead_letters()"),
    "outbox": text("SELECT pending, oldest_pending_age_s FROM metrics_outbox()"),
    "shutoffs": text("SELECT metrics_llm_shutoffs() AS n"),
    "relays": text(
        "SELECT worker, extract(epoch FROM now() - beat_at)::float8 AS age_s FROM outbox_relay_heartbeats "
        "WHERE beat_at > now() - interval '1 day'"
    ),
    "queues": text(
        "SELECT q.name, count(m.id) FILTER (WHERE m.visible) AS n FROM kombu_queue q "
        "LEFT JOIN kombu_message m ON m.queue_id = q.id GROUP BY 1"
    ),
    "housekeeping": housekeeping_metrics.TOTALS_SQL,
}


async def snapshot() -> dict[str, list[Any]]:
    async with async_engine().begin() as conn:
        return {name: list(await conn.execute(query)) for name, query in QUERIES.items()}


def families(state: dict[str, list[Any]]) -> Iterator[Metric]:
    calls = CounterMetricFamily("llm_calls", "LLM calls by outcome", labels=["status", "reason"])
    cost = CounterMetricFamily("llm_cost_cents", "LLM cost by outcome", labels=["status", "reason"])
    for row in state["llm_outcomes"]:
        calls.add_metric([row.status, row.reason], row.n)
        cost.add_metric([row.status, row.reason], float(row.cost))
    yield calls
    yield cost
    served = sum(r.n for r in state["llm_outcomes"] if r.status == "succeeded")
    hits = sum(r.n for r in state["llm_outcomes"] if r.reason == "cache")
    yield GaugeMetricFamily(
        "llm_cache_hit_ratio", "cached answers / all served answers", value=hits / served if served else 0
    )
    breaker = GaugeMetricFamily(
        "llm_breaker_open",
        "1 while a provider/model breaker is open or half-open",
        labels=["provider", "model", "state"],
    )
    for row in state["breakers"]:
        breaker.add_metric([row.provider, row.model, row.state], 0 if row.state == "closed" else 1)
    yield breaker
    enabled = bool(state["kill_switch"] and state["kill_switch"][0].enabled)
    yield GaugeMetricFamily("llm_kill_switch_enabled", "1 while the provider kill switch is on", value=int(enabled))
    yield GaugeMetricFamily(
        "llm_hourly_shutoffs_active", "users shut off for the rest of this hour", value=state["shutoffs"][0].n
    )
    budget = state["budget"][0]
    used = float(budget.spent + budget.reserved) / float(budget.cap) if budget.cap else 0.0
    yield GaugeMetricFamily("llm_budget_used_ratio", "this month's (spent + reserved) / limit, all users", value=used)
    events = CounterMetricFamily("webhook_events", "accepted webhook events", labels=["platform"])
    for row in state["events"]:
        events.add_metric([row.platform], row.n)
    yield events
    dead = CounterMetricFamily("webhook_dead_letters", "rejected payloads kept as dead letters", labels=["reason"])
    for row in state["dead_letters"]:
        dead.add_metric([row.reason_code], row.n)
    yield dead
    outbox = state["outbox"][0]
    yield GaugeMetricFamily("outbox_pending", "outbox rows accepted and not yet sent", value=outbox.pending)
    yield GaugeMetricFamily(
        "outbox_oldest_pending_age_seconds",
        "age of the oldest outbox row not yet sent",
        value=outbox.oldest_pending_age_s,
    )
    relays = GaugeMetricFamily(
        "outbox_relay_heartbeat_age_seconds", "seconds since each worker's relay last passed", labels=["worker"]
    )
    for row in state["relays"]:
        relays.add_metric([row.worker], row.age_s)
    yield relays
    depth = GaugeMetricFamily("broker_queue_depth", "messages waiting per queue", labels=["queue"])
    for row in state["queues"]:
        depth.add_metric([row.name], row.n)
    yield depth
    yield from housekeeping_metrics.families(state["housekeeping"])


class _Snapshot(Collector):
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self.metrics


async def render() -> bytes:
    shared = CollectorRegistry()
    shared.register(_Snapshot(families(await snapshot())))
    return generate_latest(REGISTRY) + generate_latest(shared)
