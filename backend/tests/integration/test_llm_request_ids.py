"""Request ids are unique per tenant and task type, while jobs are visible to their own user only.

A user repeating its own request id gets its job back (idempotent); a colleague in the same tenant
reusing that id gets a 409 that says nothing of the first user's job.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.tenants.service import ProvisionedTenant, add_user, create_tenant

from .webhook_client import bearer

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "instance"}


@pytest.fixture
def colleagues(runtime_engine: Engine) -> tuple[ProvisionedTenant, ProvisionedTenant]:
    with runtime_engine.begin() as conn:
        first = create_tenant(conn, f"colleagues-{uuid.uuid4().hex[:6]}", user_id="analyst")
    with runtime_engine.begin() as conn:
        second = add_user(conn, first, "planner")
    return first, second


def jobs_with(engine: Engine, user: ProvisionedTenant, request_id: str) -> int:
    with tenant_transaction_sync(user.context, engine) as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM llm_jobs WHERE request_id = :r"), {"r": request_id}).scalar_one()
        )


def test_a_colleagues_request_id_is_a_conflict_that_reveals_nothing(
    api: httpx.Client, runtime_engine: Engine, colleagues: tuple[ProvisionedTenant, ProvisionedTenant]
) -> None:
    first, second = colleagues
    request = {"request_id": "shared-request", "question": "why did paid search drop in week 47?"}
    created = api.post("/api/v1/llm/route", headers=bearer(first), json=request)
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]

    again = api.post("/api/v1/llm/route", headers=bearer(first), json=request)
    assert again.status_code == 200, again.text
    assert again.json()["job_id"] == job_id and again.json()["duplicate"] is True

    taken = api.post("/api/v1/llm/route", headers=bearer(second), json={**request, "question": "mine"})
    assert taken.status_code == 409, taken.text
    assert taken.headers["content-type"].startswith("application/problem+json")
    problem = taken.json()
    assert set(problem) == PROBLEM_FIELDS and problem["status"] == 409 and problem["code"] == "request_id_conflict"
    assert job_id not in taken.text and request["question"] not in taken.text
    assert jobs_with(runtime_engine, second, "shared-request") == 0
    assert jobs_with(runtime_engine, first, "shared-request") == 1

    # The id stays taken for that task type only, and the colleague's own ids work as before.
    other_task = api.post("/api/v1/llm/explanation", headers=bearer(second), json=request)
    assert other_task.status_code == 202, other_task.text
    own = api.post("/api/v1/llm/route", headers=bearer(second), json={"request_id": "planner-own"})
    assert own.status_code == 202, own.text
