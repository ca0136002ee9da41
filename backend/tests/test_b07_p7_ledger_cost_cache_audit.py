"""Ledger, cost and cache audit (EG8.4), and the boundary under real concurrency (DESIGN §8).

- every outcome kind is ledgered exactly once, with cost = tokens x the model's configured price;
- no prompt text appears in any text or JSON column of the database;
- a cache hit is at least 10x faster than the provider path, measured in this run (the mock answers
  after 200 ms, a fast real model's latency);
- 200 calls from two processes against a budget with room for 10 never take reserved + spent past
  the cap, sampled throughout; a breaker opened in one process is seen by another.
"""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.services.tenants import ProvisionedTenant, create_tenant
from scripts.bench.llm_calls import Burst, mock_boundary, run_burst
from scripts.topology import Topology

from .conftest import stored_text

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant(runtime_engine: Engine) -> ProvisionedTenant:
    with runtime_engine.begin() as conn:
        return create_tenant(conn, f"p7-{uuid.uuid4().hex[:6]}", user_id="auditor")


@pytest.fixture
def mock(topology: Topology) -> Any:
    with httpx.Client(base_url=topology.mock_url, timeout=10) as client:
        yield client
        client.post("/control/faults", json={"mode": "success"})


def dsn(topology: Topology) -> str:
    assert topology.dsns is not None
    return topology.dsns.runtime_sync


def test_every_outcome_kind_ledgered_once_with_correct_cost(
    topology: Topology, mock: httpx.Client, runtime_engine: Engine, ops_engine: Engine, tenant: ProvisionedTenant
) -> None:
    marker = f"AUDIT-PROMPT-{uuid.uuid4().hex}"
    gate = mock_boundary(dsn(topology), topology.mock_url)
    ctx = tenant.context
    outcomes = {
        "provider": gate.call(ctx, "explanation", "p7-provider", f"{marker} one"),
        "cached": gate.call(ctx, "explanation", "p7-cached", f"{marker} one"),
        "kill_switch": mock_boundary(dsn(topology), topology.mock_url, env_kill_switch=True).call(
            ctx, "explanation", "p7-kill", f"{marker} two"
        ),
    }
    mock.post("/control/faults", json={"mode": "error", "surface": "llm"})
    flaky = mock_boundary(dsn(topology), topology.mock_url, models={t: "mock-p7-flaky" for t in gate.config.models})
    outcomes["failed"] = flaky.call(ctx, "route", "p7-failed", f"{marker} three")
    for n in range(2):
        flaky.call(ctx, "route", f"p7-failed-{n}", f"{marker} four {n}")
    outcomes["breaker"] = flaky.call(ctx, "route", "p7-breaker", f"{marker} five")
    mock.post("/control/faults", json={"mode": "success"})
    with tenant_transaction_sync(ctx, runtime_engine) as conn:
        conn.execute(text("UPDATE llm_budget_periods SET limit_cents = spent_cents + reserved_cents"))
    outcomes["budget"] = gate.call(ctx, "explanation", "p7-budget", f"{marker} six")
    with tenant_transaction_sync(ctx, runtime_engine) as conn:
        conn.execute(text("UPDATE llm_budget_periods SET limit_cents = 2500"))
        conn.execute(
            text(
                "INSERT INTO llm_hourly_shutoff (tenant_id, user_id, hour_start, shut_off) "
                "VALUES (:t, :u, date_trunc('hour', now()), true) ON CONFLICT (tenant_id, user_id, "
                "hour_start) DO UPDATE SET shut_off = true"
            ),
            {"t": ctx.tenant_id, "u": ctx.user_id},
        )
    outcomes["hourly"] = gate.call(ctx, "explanation", "p7-hourly", f"{marker} seven")

    kinds = {
        k: (o.status, o.blocked_reason or o.failure_reason, o.was_cached, o.provider_attempted)
        for k, o in outcomes.items()
    }
    assert kinds == {
        "provider": ("succeeded", None, False, True),
        "cached": ("succeeded", None, True, False),
        "kill_switch": ("blocked", "provider_kill_switch", False, False),
        "failed": ("failed", "http_500", False, True),
        "breaker": ("blocked", "breaker_open", False, False),
        "budget": ("blocked", "budget_exhausted", False, False),
        "hourly": ("blocked", "hourly_shutoff", False, False),
    }
    with tenant_transaction_sync(ctx, runtime_engine) as conn:
        rows = {r.request_id: r for r in conn.execute(text("SELECT * FROM llm_api_calls"))}
    assert len(rows) == 9  # seven outcomes plus the two extra failures that tripped the breaker; one row each
    provider_row = rows["p7-provider"]
    expected = gate.config.cost_cents(provider_row.model, provider_row.prompt_tokens + provider_row.completion_tokens)
    assert provider_row.cost_cents == expected > 0
    assert all(r.cost_cents == 0 for key, r in rows.items() if key != "p7-provider")
    assert [where for where, value in stored_text(ops_engine) if marker in value] == []


def test_cache_hit_is_ten_times_faster_than_the_provider(
    topology: Topology, mock: httpx.Client, tenant: ProvisionedTenant
) -> None:
    gate = mock_boundary(dsn(topology), topology.mock_url)
    mock.post("/control/faults", json={"mode": "slow", "surface": "llm", "slow_ms": 200})

    def timed(request_id: str, prompt: str) -> float:
        started = time.perf_counter()
        outcome = gate.call(tenant.context, "explanation", request_id, prompt)
        assert outcome.status == "succeeded"
        return time.perf_counter() - started

    provider = [timed(f"p7-speed-miss-{n}", f"speed question {n}") for n in range(5)]
    cached = [timed(f"p7-speed-hit-{n}", "speed question 0") for n in range(20)]
    ratio = statistics.median(provider) / statistics.median(cached)
    assert ratio >= 10, f"cache path only {ratio:.1f}x faster (provider {provider}, cache {cached})"


def test_200_concurrent_calls_from_two_processes_never_overshoot(
    topology: Topology, runtime_engine: Engine, tenant: ProvisionedTenant
) -> None:
    gate = mock_boundary(dsn(topology), topology.mock_url)
    cap = gate.config.estimate_cents("mock-standard", "burst question p7-a 100") * 10  # room for 10 reservations
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        conn.execute(
            text(
                "INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents) "
                "VALUES (:t, :u, date_trunc('month', now())::date, :cap)"
            ),
            {"t": tenant.tenant_id, "u": tenant.user_id, "cap": cap},
        )
    peak, stop = [Decimal(0)], threading.Event()

    def monitor() -> None:
        while not stop.is_set():
            with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
                peak[0] = max(
                    peak[0],
                    conn.execute(text("SELECT spent_cents + reserved_cents FROM llm_budget_periods")).scalar_one(),
                )
            time.sleep(0.002)

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    bursts = [
        Burst(dsn(topology), topology.mock_url, str(tenant.tenant_id), tenant.user_id, f"p7-{p}", 100)
        for p in ("a", "b")
    ]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = [outcome for burst in pool.map(run_burst, bursts) for outcome in burst]
    stop.set()
    watcher.join(timeout=5)
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        spent, reserved = conn.execute(text("SELECT spent_cents, reserved_cents FROM llm_budget_periods")).one()
        ledgered = conn.execute(text("SELECT count(*), coalesce(sum(cost_cents), 0) FROM llm_api_calls")).one()
    assert len(results) == 200 and set(results) <= {"succeeded:", "blocked:budget_exhausted"}
    assert results.count("blocked:budget_exhausted") > 0  # the cap really bound
    assert peak[0] <= cap and spent + reserved <= cap and reserved == 0
    assert (ledgered[0], ledgered[1]) == (200, spent)  # one row per call; the budget agrees with the ledger


def test_breaker_opened_in_one_process_is_seen_by_another(
    topology: Topology, mock: httpx.Client, tenant: ProvisionedTenant
) -> None:
    model = f"mock-xproc-{uuid.uuid4().hex[:6]}"
    mock.post("/control/faults", json={"mode": "error", "surface": "llm"})
    burst = Burst(dsn(topology), topology.mock_url, str(tenant.tenant_id), tenant.user_id, "p7-x", 3, threads=1)
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # another process trips it
        tripped = pool.apply(_trip_breaker, (burst, model))
    mock.post("/control/faults", json={"mode": "success"})
    assert tripped == ["failed:http_500"] * 3
    here = mock_boundary(
        dsn(topology),
        topology.mock_url,
        models={t: model for t in mock_boundary(dsn(topology), topology.mock_url).config.models},
    )
    outcome = here.call(tenant.context, "route", "p7-x-here", "after the other process tripped it")
    assert (outcome.status, outcome.blocked_reason, outcome.provider_attempted) == ("blocked", "breaker_open", False)


def _trip_breaker(burst: Burst, model: str) -> list[str]:
    gate = mock_boundary(
        burst.dsn, burst.mock_url, models={t: model for t in mock_boundary(burst.dsn, burst.mock_url).config.models}
    )
    from app.core.tenancy import TenantContext

    ctx = TenantContext(uuid.UUID(burst.tenant_id), burst.user_id)
    outcomes = [gate.call(ctx, "route", f"{burst.prefix}-{n}", f"trip {n}") for n in range(burst.calls)]
    return [f"{o.status}:{o.failure_reason or ''}" for o in outcomes]
