"""The complexity router (docs/architecture.md, "The LLM boundary" step 1).

eg63: all four task types go through the boundary (api -> outbox -> worker -> boundary) and are
ledgered with their tier. eg65: budget pressure downgrades the tier (>= 80% one tier, >= 95% the
cheapest), with a low-spend control that does not.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.llm.router import Tier, complexity, route, tier_for, under_pressure
from app.tenants.service import create_tenant

from .integration.webhook_client import run_llm_task

EXPECTED_TIER = {
    "route": "cheap",
    "explanation": "standard",
    "investigation": "standard",
    "budget_optimization": "premium",
}


@pytest.mark.parametrize(
    ("score", "tier"),
    [(1, Tier.CHEAP), (3, Tier.CHEAP), (4, Tier.STANDARD), (7, Tier.STANDARD), (8, Tier.PREMIUM), (10, Tier.PREMIUM)],
)
def test_eg65_score_bands(score: int, tier: Tier) -> None:
    assert tier_for(score) == tier


def test_eg65_pressure_at_80_percent_drops_one_tier() -> None:
    assert under_pressure(Tier.PREMIUM, 0.80) == Tier.STANDARD
    assert under_pressure(Tier.STANDARD, 0.85) == Tier.CHEAP
    assert under_pressure(Tier.CHEAP, 0.90) == Tier.CHEAP


def test_eg65_pressure_at_95_percent_uses_the_cheapest() -> None:
    assert under_pressure(Tier.PREMIUM, 0.95) == Tier.CHEAP
    assert route("budget_optimization", "x", 0.99) == (8, Tier.CHEAP)


def test_eg65_low_spend_control_keeps_the_tier() -> None:
    assert under_pressure(Tier.PREMIUM, 0.79) == Tier.PREMIUM
    assert route("budget_optimization", "x", 0.10) == (8, Tier.PREMIUM)


def test_eg65_prompt_size_raises_complexity() -> None:
    assert complexity("route", "short") == 2
    assert complexity("route", "x" * 2_001) == 3
    assert complexity("explanation", "x" * 8_001) == 7


@pytest.mark.integration
def test_eg63_all_four_task_types_are_ledgered_with_their_tier(api: httpx.Client, runtime_engine: Engine) -> None:
    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, "eg63")
    jobs = {
        task: run_llm_task(api, tenant, task, f"eg63-{task}-{uuid.uuid4().hex[:6]}", "why?") for task in EXPECTED_TIER
    }
    assert {task: job["status"] for task, job in jobs.items()} == dict.fromkeys(EXPECTED_TIER, "succeeded")
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        ledger = {row.endpoint: row for row in conn.execute(text("SELECT * FROM llm_api_calls"))}
    assert {endpoint: row.tier for endpoint, row in ledger.items()} == EXPECTED_TIER
    for row in ledger.values():
        assert row.status == "succeeded" and row.provider_attempted and row.provider == "mock"
        assert row.cost_cents > 0 and row.prompt_tokens > 0


@pytest.mark.integration
def test_eg65_budget_pressure_downgrades_through_the_boundary(
    api: httpx.Client, runtime_engine: Engine, admin_engine: Engine
) -> None:
    with runtime_engine.begin() as conn:
        pressed = create_tenant(conn, "eg65-pressed")
    with admin_engine.begin() as conn:  # spend recorded earlier this month, as an operator would restore it
        conn.execute(
            text(
                "INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents, spent_cents) "
                "VALUES (:t, :u, date_trunc('month', now())::date, 2500, 2100)"
            ),
            {"t": pressed.tenant_id, "u": pressed.user_id},
        )  # 84% used
    with runtime_engine.begin() as conn:
        relaxed = create_tenant(conn, "eg65-control")
    for tenant, expected in ((pressed, "standard"), (relaxed, "premium")):
        job = run_llm_task(api, tenant, "budget_optimization", f"eg65-{uuid.uuid4().hex[:6]}", "why?")
        assert job["status"] == "succeeded" and job["result"]["call"]["tier"] == expected
