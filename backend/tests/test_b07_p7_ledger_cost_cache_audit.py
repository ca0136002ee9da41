"""Ledger, cost and cache audit (EG8.4), and the boundary under real concurrency (docs/architecture.md, "The LLM boundary").

- every outcome kind is ledgered exactly once, with cost = tokens x the model's configured price;
- no prompt text appears in any text or JSON column of the database;
- a cache hit costs less than a provider call: medians of both paths measured in turns in this run,
  with the mock answering as fast as it can (no injected latency), and a control where both sides
  call the provider and the comparison fails;
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
from app.core.tenancy import TenantContext
from app.llm.boundary import Boundary
from app.tenants.service import ProvisionedTenant, create_tenant
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


MINE = "tenant_id = :t AND user_id = :u"  # ops_admin sees every tenant's rows: name the one meant


def test_every_outcome_kind_ledgered_once_with_correct_cost(
    topology: Topology,
    mock: httpx.Client,
    runtime_engine: Engine,
    ops_engine: Engine,
    admin_engine: Engine,
    tenant: ProvisionedTenant,
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
    mine = {"t": ctx.tenant_id, "u": ctx.user_id}
    with admin_engine.begin() as conn:  # limits are the operators' to set
        conn.execute(
            text(f"UPDATE llm_budget_periods SET limit_cents = spent_cents + reserved_cents WHERE {MINE}"), mine
        )
    outcomes["budget"] = gate.call(ctx, "explanation", "p7-budget", f"{marker} six")
    with admin_engine.begin() as conn:
        conn.execute(text(f"UPDATE llm_budget_periods SET limit_cents = 2500 WHERE {MINE}"), mine)
    with tenant_transaction_sync(ctx, runtime_engine) as conn:
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


# A miss does a hit's work (one admission round trip to PostgreSQL) plus the provider's round trip
# and a settle transaction, so it costs about twice a hit or more; the margin sits below that, and
# far above the spread between the medians of two samples of the same path.
CACHE_MARGIN = 1.5
SPEED_SAMPLES = 15


def timed_call(gate: Boundary, ctx: TenantContext, request_id: str, prompt: str, *, cached: bool) -> float:
    """Seconds for one boundary call, which must have taken the path named (cache or provider)."""
    started = time.perf_counter()
    outcome = gate.call(ctx, "explanation", request_id, prompt)
    elapsed = time.perf_counter() - started
    assert (outcome.status, outcome.was_cached, outcome.provider_attempted) == ("succeeded", cached, not cached)
    return elapsed


def cheaper(candidate: list[float], baseline: list[float]) -> bool:
    """The candidate path's median costs at most 1/CACHE_MARGIN of the baseline's."""
    return statistics.median(candidate) * CACHE_MARGIN <= statistics.median(baseline)


def interleaved(
    gate: Boundary, ctx: TenantContext, tag: str, first_cached: bool, second_cached: bool
) -> tuple[list[float], list[float]]:
    """Two samples taken in turns, so drift on this shared machine falls on both alike. A cached call
    asks the question answered before the loop; a provider call asks a new one."""
    first: list[float] = []
    second: list[float] = []
    for n in range(SPEED_SAMPLES):
        for sample, cached, side in ((first, first_cached, "a"), (second, second_cached, "b")):
            prompt = f"{tag} speed question" if cached else f"{tag} speed question {side}-{n}"
            sample.append(timed_call(gate, ctx, f"{tag}-{side}-{n}", prompt, cached=cached))
    return first, second


def test_a_cache_hit_costs_less_than_a_provider_call(topology: Topology, tenant: ProvisionedTenant) -> None:
    """Measured against the provider path in the same run, with the mock answering as fast as it can."""
    gate = mock_boundary(dsn(topology), topology.mock_url)
    timed_call(gate, tenant.context, "p7-speed-seed", "p7-speed speed question", cached=False)
    hits, misses = interleaved(gate, tenant.context, "p7-speed", True, False)
    assert cheaper(hits, misses), f"cache {statistics.median(hits)} s vs provider {statistics.median(misses)} s"


def test_the_speed_comparison_fails_when_both_paths_call_the_provider(
    topology: Topology, tenant: ProvisionedTenant
) -> None:
    """Control: with no cache hit on either side, the property is false and the comparison says so."""
    gate = mock_boundary(dsn(topology), topology.mock_url)
    timed_call(gate, tenant.context, "p7-same-warm", "p7-same warm-up", cached=False)
    first, second = interleaved(gate, tenant.context, "p7-same", False, False)
    assert not cheaper(first, second) and not cheaper(second, first)


def test_200_concurrent_calls_from_two_processes_never_overshoot(
    topology: Topology, runtime_engine: Engine, admin_engine: Engine, tenant: ProvisionedTenant
) -> None:
    gate = mock_boundary(dsn(topology), topology.mock_url)
    cap = gate.config.estimate_cents("mock-standard", "burst question p7-a 100") * 10  # room for 10 reservations
    with admin_engine.begin() as conn:  # a tight budget is an operator's decision
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


def test_another_users_request_id_is_refused_by_the_boundary(topology: Topology, tenant: ProvisionedTenant) -> None:
    """The same tenant's other user sends a request id the first user already used: the boundary
    answers blocked (request_id_taken), shows nothing of the first call and calls no provider."""
    gate = mock_boundary(dsn(topology), topology.mock_url)
    request_id = f"p7-taken-{uuid.uuid4().hex}"
    first = gate.call(tenant.context, "route", request_id, "a question of the first user")
    other = TenantContext(tenant.context.tenant_id, "another-user")
    taken = gate.call(other, "route", request_id, "a question of another user")
    assert first.status == "succeeded"
    assert (taken.status, taken.blocked_reason, taken.call_id, taken.text) == ("blocked", "request_id_taken", "", None)
    again = gate.call(tenant.context, "route", request_id, "a question of the first user")
    assert (again.duplicate, again.call_id, again.status) == (
        True,
        first.call_id,
        "succeeded",
    )  # control: the owner's own
