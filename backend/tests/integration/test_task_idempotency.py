"""Every worker task, delivered a second time through the real broker, changes nothing.

The PostgreSQL-polled transport may run a message twice (and the sweeper re-sends work it thinks
was lost), so each task must be idempotent. Each test lets the normal path finish, snapshots what
the task owns, sends the very same message again (same task name and arguments) to the live
worker, waits until the worker reports that second execution finished, and compares.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.outbox.relay import RECOMPUTE_TASK, RECONCILE_TASK, RUN_JOB_TASK
from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.topology import Topology

from ..conftest import TwoTenants
from .test_b07_p8_topology_closure_pack import NOW, connect_platform, platform_txn, run_reconciliation, stripe_charge
from .webhook_client import bearer, eventually, post_webhook, run_llm_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker(topology: Topology) -> Iterator[Celery]:
    """A bare Celery client on the topology's broker: it only sends, like a duplicate delivery would."""
    client = Celery("duplicate-delivery", broker=topology.operator_env["CELERY_BROKER_URL"])
    yield client
    client.close()


@pytest.fixture(scope="module")
def tenant(topology: Topology, runtime_engine: Engine) -> ProvisionedTenant:
    with runtime_engine.begin() as conn:
        made = create_tenant(conn, f"twice-{uuid.uuid4().hex[:6]}", user_id="analyst")
    with httpx.Client(base_url=topology.api_url, timeout=15) as api:
        for n, cents in enumerate((1_000, 2_500)):
            assert (
                post_webhook(api, "stripe", made, stripe_charge(f"evt_twice_{n}", "cus_twice", cents, NOW)).status_code
                == 202
            )
    return made


def deliver_again(broker: Celery, topology: Topology, name: str, args: list[Any], queue: str) -> None:
    """Send the message once more and wait until a worker log says that execution finished."""
    task_id = broker.send_task(name, args=args, queue=queue).id
    logs = sorted(Path(topology.config.logs_dir).glob("worker*.log"))

    def finished() -> bool:
        return any(f"[{task_id}] succeeded" in log.read_text(errors="replace") for log in logs)

    eventually(finished, timeout_s=60, interval_s=0.2)


def snapshot(engine: Engine, tenant: ProvisionedTenant, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with tenant_transaction_sync(tenant.context, engine) as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


RESULTS_SQL = "SELECT model, day, channel, revenue_cents, conversions FROM attribution_results ORDER BY 1, 2, 3"


def test_recompute_twice(broker: Celery, topology: Topology, runtime_engine: Engine, tenant: ProvisionedTenant) -> None:
    def recomputed() -> list[tuple[Any, ...]]:
        return snapshot(runtime_engine, tenant, RESULTS_SQL)

    before = eventually(recomputed, timeout_s=30)
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        up_to = conn.execute(
            text("SELECT max(id) FROM outbox WHERE tenant_id = :t"), {"t": tenant.tenant_id}
        ).scalar_one()
    deliver_again(broker, topology, RECOMPUTE_TASK, [str(tenant.tenant_id), up_to], "attribution")
    assert recomputed() == before
    assert sum(row[4] for row in before) == 2  # both conversions, each counted once


def test_attribution_job_twice(
    broker: Celery, topology: Topology, runtime_engine: Engine, tenant: ProvisionedTenant
) -> None:
    with httpx.Client(base_url=topology.api_url, timeout=15) as api:
        job_id = api.post("/api/v1/attribution/jobs", headers=bearer(tenant), json={"model": "last_touch"}).json()[
            "job_id"
        ]
        eventually(
            lambda: (
                api.get(f"/api/v1/attribution/jobs/{job_id}", headers=bearer(tenant)).json()["status"] == "succeeded"
            )
        )
    job_sql = "SELECT status, result::text, finished_at, error FROM attribution_jobs WHERE id = :id"
    before = snapshot(runtime_engine, tenant, job_sql, id=job_id), snapshot(runtime_engine, tenant, RESULTS_SQL)
    deliver_again(broker, topology, RUN_JOB_TASK, [str(tenant.tenant_id), job_id, 60.0], "attribution")
    assert (
        snapshot(runtime_engine, tenant, job_sql, id=job_id),
        snapshot(runtime_engine, tenant, RESULTS_SQL),
    ) == before


def test_reconciliation_run_twice(
    broker: Celery, topology: Topology, runtime_engine: Engine, tenant: ProvisionedTenant
) -> None:
    with httpx.Client(base_url=topology.api_url, timeout=15) as api, httpx.Client(base_url=topology.mock_url) as mock:
        connect_platform(api, mock, tenant, [platform_txn("ch_twice", 1_000, NOW)])
        run = run_reconciliation(api, tenant)
    assert run["status"] == "succeeded", run
    run_sql = """SELECT r.status, r.digest, r.finished_at, (SELECT count(*) FROM reconciliation_items i WHERE i.run_id = r.id)
                 FROM reconciliation_runs r WHERE r.id = :id"""
    before = snapshot(runtime_engine, tenant, run_sql, id=run["run_id"])
    deliver_again(broker, topology, RECONCILE_TASK, [str(tenant.tenant_id), run["run_id"]], "maintenance")
    assert snapshot(runtime_engine, tenant, run_sql, id=run["run_id"]) == before


@pytest.mark.parametrize("task", ["route", "explanation", "investigation", "budget_optimization"])
def test_llm_task_twice(
    broker: Celery, topology: Topology, runtime_engine: Engine, tenant: ProvisionedTenant, task: str
) -> None:
    with httpx.Client(base_url=topology.api_url, timeout=15) as api:
        job = run_llm_task(api, tenant, task, f"twice-{task}-{time.time_ns()}", "what drove revenue?")
    assert job["status"] == "succeeded", job
    ledger_sql = "SELECT id, status, cost_cents, was_cached FROM llm_api_calls ORDER BY id"
    job_sql = "SELECT status, call_id, result::text, finished_at FROM llm_jobs WHERE id = :id"
    before = snapshot(runtime_engine, tenant, ledger_sql), snapshot(runtime_engine, tenant, job_sql, id=job["job_id"])
    deliver_again(broker, topology, task, [str(tenant.tenant_id), tenant.user_id, job["job_id"]], "llm")
    after = snapshot(runtime_engine, tenant, ledger_sql), snapshot(runtime_engine, tenant, job_sql, id=job["job_id"])
    assert after == before  # no second ledger row, no second charge, the same answer


def test_an_injected_message_naming_another_tenants_job_changes_nothing(
    broker: Celery, topology: Topology, runtime_engine: Engine, two_tenants: TwoTenants
) -> None:
    """An attacker with app_user's SQL session can write to the broker's tables, so a message may name
    any ids. A task takes its tenant from the message and re-reads the job in that tenant's context:
    tenant A's message naming B's job finds nothing and leaves it alone. The control sends the same
    message with B's own id, and the job runs."""
    b = two_tenants.b
    with tenant_transaction_sync(b.context, runtime_engine) as conn:  # queued, with no outbox row to send it
        job_id = conn.execute(
            text("INSERT INTO attribution_jobs (tenant_id, model) VALUES (:t, 'last_touch') RETURNING id"),
            {"t": b.tenant_id},
        ).scalar_one()
    job_sql = "SELECT status, started_at FROM attribution_jobs WHERE id = :id"
    deliver_again(broker, topology, RUN_JOB_TASK, [str(two_tenants.a.tenant_id), str(job_id), 60.0], "attribution")
    assert snapshot(runtime_engine, b, job_sql, id=job_id) == [("queued", None)]
    deliver_again(broker, topology, RUN_JOB_TASK, [str(b.tenant_id), str(job_id), 60.0], "attribution")
    assert (
        snapshot(runtime_engine, b, job_sql, id=job_id)[0][0] == "succeeded"
    )  # control: its own tenant's message runs
