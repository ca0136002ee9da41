"""B0.7-P4: LLM synthesis end to end through the single provider boundary, in the live topology.

1. each task type runs api -> worker -> boundary with persisted llm_api_calls evidence
2. investigation and budget-optimization jobs materialize
3. a second identical request is served from cache (was_cached, no provider attempt)
4. repeated provider failures open the breaker (blocked_reason=breaker_open), and it recovers
5. the kill switch (database flag, and environment) denies without a provider attempt
6. a seeded hourly shutoff row blocks execution
7. a duplicate delivery of one request id adds no ledger row
8. provider-backed successes carry reasoning/metadata refs to distillation records
9. a wrong tenant or user context reads zero rows
plus: no raw prompt anywhere in the database, budgets never overshoot under concurrency, and
runtime_db_probe.json is written to $B07_P4_ARTIFACT_DIR (default artifacts/b07-p4).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.core.tenancy import TenantContext
from app.llm.boundary import Boundary
from app.llm.router import Tier
from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.bench.llm_calls import mock_config
from scripts.harness import REPO_ROOT
from scripts.identity.assert_runtime_identity import probe_identity
from scripts.topology import Topology

from ..conftest import stored_text
from .webhook_client import bearer, run_llm_task

TASKS = ("route", "explanation", "investigation", "budget_optimization")


@pytest.fixture(scope="module")
def tenant(runtime_engine: Engine) -> ProvisionedTenant:
    with runtime_engine.begin() as conn:
        return create_tenant(conn, "p4-e2e", user_id="analyst")


@pytest.fixture(scope="module")
def mock(topology: Topology) -> Any:
    with httpx.Client(base_url=topology.mock_url, timeout=10) as client:
        yield client
        client.post("/control/faults", json={"mode": "success"})


def boundary(topology: Topology, engine: Engine, **overrides: Any) -> Boundary:
    return Boundary(mock_config(**overrides), topology.mock_url, engine=engine)


def ledger(engine: Engine, ctx: TenantContext, where: str = "true", **params: Any) -> list[Any]:
    with tenant_transaction_sync(ctx, engine) as conn:
        return list(conn.execute(text(f"SELECT * FROM llm_api_calls WHERE {where} ORDER BY created_at"), params))


def test_1_2_each_task_type_runs_and_materializes(
    api: httpx.Client, runtime_engine: Engine, tenant: ProvisionedTenant
) -> None:
    jobs = {task: run_llm_task(api, tenant, task, f"p4-{task}") for task in TASKS}
    assert {t: j["status"] for t, j in jobs.items()} == dict.fromkeys(TASKS, "succeeded")
    rows = {row.endpoint: row for row in ledger(runtime_engine, tenant.context)}
    assert set(rows) >= set(TASKS)
    assert all(rows[t].status == "succeeded" and rows[t].provider_attempted for t in TASKS)
    investigation = api.get(
        f"/api/v1/investigations/{jobs['investigation']['result']['investigation_id']}", headers=bearer(tenant)
    )
    assert investigation.status_code == 200 and investigation.json()["findings"]["summary"]
    optimization = api.get(
        f"/api/v1/budget-optimizations/{jobs['budget_optimization']['result']['budget_optimization_id']}",
        headers=bearer(tenant),
    )
    assert optimization.status_code == 200 and optimization.json()["rationale"]


def test_3_identical_request_is_a_cache_hit(
    api: httpx.Client, runtime_engine: Engine, tenant: ProvisionedTenant
) -> None:
    first = run_llm_task(api, tenant, "explanation", "p4-cache-1", "what moved revenue?")
    second = run_llm_task(api, tenant, "explanation", "p4-cache-2", "what  moved   revenue?")  # same up to whitespace
    assert first["result"]["call"]["was_cached"] is False
    call = second["result"]["call"]
    assert (call["status"], call["was_cached"], call["provider_attempted"], call["cost_cents"]) == (
        "succeeded",
        True,
        False,
        0.0,
    )
    assert second["result"]["text"] == first["result"]["text"]


def test_4_breaker_opens_after_repeated_failures_and_recovers(
    topology: Topology, mock: httpx.Client, runtime_engine: Engine, tenant: ProvisionedTenant
) -> None:
    flaky = boundary(topology, runtime_engine, models={t: "mock-breaker" for t in Tier}, breaker_open_s=1.0)
    mock.post("/control/faults", json={"mode": "error", "surface": "llm"})
    try:
        failures = [flaky.call(tenant.context, "route", f"p4-breaker-{n}", f"fail {n}") for n in range(3)]
        blocked = flaky.call(tenant.context, "route", "p4-breaker-open", "fail fast")
    finally:
        mock.post("/control/faults", json={"mode": "success"})
    assert [(o.status, o.failure_reason, o.provider_attempted) for o in failures] == [("failed", "http_500", True)] * 3
    assert (blocked.status, blocked.blocked_reason, blocked.provider_attempted) == ("blocked", "breaker_open", False)
    time.sleep(1.1)  # cooled down: one half-open trial, which succeeds and closes the breaker
    assert flaky.call(tenant.context, "route", "p4-breaker-trial", "recover").status == "succeeded"
    assert flaky.call(tenant.context, "route", "p4-breaker-after", "recovered").status == "succeeded"


def test_5_kill_switch_denies_without_attempt(
    api: httpx.Client, topology: Topology, runtime_engine: Engine, admin_engine: Engine, tenant: ProvisionedTenant
) -> None:
    with admin_engine.begin() as conn:  # the operators' flag (not the runtime's): no restart needed
        conn.execute(text("UPDATE llm_kill_switch SET enabled = true, reason = 'p4 drill', updated_at = now()"))
    try:
        job = run_llm_task(api, tenant, "route", "p4-kill-db")
    finally:
        with admin_engine.begin() as conn:
            conn.execute(text("UPDATE llm_kill_switch SET enabled = false, reason = null, updated_at = now()"))
    call = job["result"]["call"]
    assert (job["status"], call["blocked_reason"], call["provider_attempted"]) == (
        "blocked",
        "provider_kill_switch",
        False,
    )
    by_env = boundary(topology, runtime_engine, env_kill_switch=True).call(tenant.context, "route", "p4-kill-env", "x")
    assert (by_env.status, by_env.blocked_reason, by_env.provider_attempted) == (
        "blocked",
        "provider_kill_switch",
        False,
    )
    assert run_llm_task(api, tenant, "route", "p4-kill-after")["status"] == "succeeded"  # control: flag off again


def test_6_seeded_hourly_shutoff_blocks(topology: Topology, runtime_engine: Engine) -> None:
    with runtime_engine.begin() as conn:
        capped = create_tenant(conn, "p4-hourly", user_id="spender")
    with tenant_transaction_sync(capped.context, runtime_engine) as conn:
        conn.execute(
            text(
                "INSERT INTO llm_hourly_shutoff (tenant_id, user_id, hour_start, shut_off, reason) "
                "VALUES (:t, :u, date_trunc('hour', now()), true, 'manual')"
            ),
            {"t": capped.tenant_id, "u": capped.user_id},
        )
    outcome = boundary(topology, runtime_engine).call(capped.context, "route", "p4-hourly", "blocked?")
    assert (outcome.status, outcome.blocked_reason, outcome.provider_attempted) == ("blocked", "hourly_shutoff", False)


def test_7_duplicate_delivery_adds_no_row(
    api: httpx.Client, topology: Topology, runtime_engine: Engine, tenant: ProvisionedTenant
) -> None:
    gate = boundary(topology, runtime_engine)
    first = gate.call(tenant.context, "explanation", "p4-dup", "once")
    again = gate.call(tenant.context, "explanation", "p4-dup", "once")
    assert again.duplicate and again.call_id == first.call_id and again.status == first.status
    assert len(ledger(runtime_engine, tenant.context, "request_id = :r", r="p4-dup")) == 1
    posts = [api.post("/api/v1/llm/route", headers=bearer(tenant), json={"request_id": "p4-repost"}) for _ in range(2)]
    assert [p.status_code for p in posts] == [202, 200] and posts[1].json()["duplicate"] is True
    assert posts[0].json()["job_id"] == posts[1].json()["job_id"]


def test_8_distillation_refs_on_provider_backed_success(runtime_engine: Engine, tenant: ProvisionedTenant) -> None:
    rows = ledger(runtime_engine, tenant.context, "status = 'succeeded' AND provider_attempted")
    assert rows
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        for row in rows:
            kinds = dict(
                conn.execute(
                    text("SELECT id, kind FROM llm_distillation_records WHERE call_id = :c"), {"c": row.id}
                ).all()
            )
            assert kinds == {row.reasoning_ref: "reasoning", row.metadata_ref: "metadata"}
    cached = ledger(runtime_engine, tenant.context, "was_cached")
    assert cached and all(r.reasoning_ref is None for r in cached)  # no provider, nothing to distil


def test_9_wrong_tenant_or_user_context_reads_nothing(runtime_engine: Engine, tenant: ProvisionedTenant) -> None:
    assert ledger(runtime_engine, tenant.context)  # control: the owner sees its rows
    for stranger in (TenantContext(tenant.tenant_id, "someone-else"), TenantContext(uuid.uuid4(), tenant.user_id)):
        with tenant_transaction_sync(stranger, runtime_engine) as conn:
            for table in ("llm_api_calls", "llm_jobs", "llm_distillation_records", "investigations"):
                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0, table


def test_budget_never_overshoots_under_concurrency(
    topology: Topology, runtime_engine: Engine, admin_engine: Engine
) -> None:
    with runtime_engine.begin() as conn:
        tight = create_tenant(conn, "p4-budget", user_id="frugal")
    gate = boundary(topology, runtime_engine)
    estimate = gate.config.estimate_cents("mock-standard", "concurrent question 00")
    limit = estimate * Decimal("3.5")
    with admin_engine.begin() as conn:  # a tight budget is an operator's decision
        conn.execute(
            text(
                "INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents) "
                "VALUES (:t, :u, date_trunc('month', now())::date, :limit)"
            ),
            {"t": tight.tenant_id, "u": tight.user_id, "limit": limit},
        )
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(
            pool.map(
                lambda n: gate.call(tight.context, "explanation", f"p4-b-{n}", f"concurrent question {n:02d}"),
                range(16),
            )
        )
    statuses = [o.status for o in outcomes]
    assert statuses.count("succeeded") >= 1 and statuses.count("blocked") >= 1  # the budget really bound
    assert {o.blocked_reason for o in outcomes if o.status == "blocked"} == {"budget_exhausted"}
    with tenant_transaction_sync(tight.context, runtime_engine) as conn:
        spent, reserved, cap = conn.execute(
            text("SELECT spent_cents, reserved_cents, limit_cents FROM llm_budget_periods")
        ).one()
    rows = ledger(runtime_engine, tight.context)
    assert len(rows) == 16  # every outcome ledgered, once
    assert reserved == 0 and 0 < spent <= cap  # settled to actual cost; never past the limit
    assert spent == sum(r.cost_cents for r in rows)  # the budget and the ledger agree to the cent


def test_no_raw_prompt_is_stored_anywhere(api: httpx.Client, ops_engine: Engine, tenant: ProvisionedTenant) -> None:
    marker = f"PROMPT-MARKER-{uuid.uuid4().hex}"
    job = run_llm_task(api, tenant, "route", "p4-secret-prompt", f"route this: {marker}")
    assert job["status"] == "succeeded"
    leaks = [where for where, value in stored_text(ops_engine) if marker in value]
    # The question is the caller's input and lives on its job row; the prompt built from it must not.
    assert leaks == ["llm_jobs.question"]


def test_runtime_db_probe_is_written(topology: Topology, runtime_engine: Engine, tenant: ProvisionedTenant) -> None:
    assert topology.dsns is not None
    out_dir = Path(os.environ.get("B07_P4_ARTIFACT_DIR") or REPO_ROOT / "artifacts" / "b07-p4")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        outcomes = {
            f"{r.status}:{r.blocked_reason or r.failure_reason or ('cached' if r.was_cached else 'provider')}": r.n
            for r in conn.execute(
                text(
                    "SELECT status, blocked_reason, failure_reason, was_cached, count(*) AS n FROM llm_api_calls "
                    "GROUP BY 1, 2, 3, 4"
                )
            )
        }
    identity = probe_identity(topology.dsns.runtime_sync, 5)
    probe = {"identity": {k: v for k, v in identity.items() if k != "server_version"}, "llm_outcomes": outcomes}
    (out_dir / "runtime_db_probe.json").write_text(json.dumps(probe, indent=2, sort_keys=True, default=str) + "\n")
    assert identity["db_user"] == "app_user" and not identity["rolsuper"] and not identity["rolbypassrls"]
    assert {
        "succeeded:provider",
        "succeeded:cached",
        "blocked:provider_kill_switch",
        "failed:http_500",
        "blocked:breaker_open",
    } <= set(outcomes)
