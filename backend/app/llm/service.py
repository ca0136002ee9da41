"""LLM jobs, api side: a job row and the outbox row that schedules it commit together."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core import logs
from app.core.tenancy import TenantContext


class LLMTaskRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    request_id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\w.:-]+$")]
    question: Annotated[str, Field(default="", max_length=4000, pattern=r"^[^\x00]*$")]


INSERT_JOB = text(
    "INSERT INTO llm_jobs (tenant_id, user_id, task_type, request_id, question) VALUES (:t, :u, :task, :r, :q) "
    "ON CONFLICT (tenant_id, request_id, task_type) DO NOTHING RETURNING id, status"
)
EXISTING_JOB = text("SELECT id, status FROM llm_jobs WHERE request_id = :r AND task_type = :task")
INSERT_OUTBOX = text("INSERT INTO outbox (tenant_id, kind, payload) VALUES (:t, 'llm_task', CAST(:payload AS jsonb))")
GET_JOB = text("SELECT id, task_type, request_id, status, result, created_at, finished_at FROM llm_jobs WHERE id = :id")
GET_INVESTIGATION = text("SELECT id, job_id, findings, created_at FROM investigations WHERE id = :id")
GET_OPTIMIZATION = text(
    "SELECT id, job_id, recommended_allocation, rationale, created_at FROM budget_optimization_jobs WHERE id = :id"
)


class RequestIdTakenError(Exception):
    """Another user of the tenant already used this request id for this task type."""


async def request_task(
    conn: AsyncConnection, ctx: TenantContext, task_type: str, request: LLMTaskRequest
) -> tuple[Any, bool]:
    """The job for this request id: a new one (scheduled), or the one an earlier delivery created.

    Request ids are unique per tenant and task type (migration 0005), but a job is visible to its own
    user only: a conflicting row this user cannot read belongs to a colleague, and is not theirs to
    see, not even as a job id."""
    params = {"t": ctx.tenant_id, "u": ctx.user_id, "task": task_type, "r": request.request_id, "q": request.question}
    job = (await conn.execute(INSERT_JOB, params)).first()
    if job is None:
        existing = (await conn.execute(EXISTING_JOB, params)).first()
        if existing is None:
            raise RequestIdTakenError(request.request_id)
        return existing, True
    payload = {"job_id": str(job.id), "task_type": task_type, "user_id": ctx.user_id, **logs.correlation()}
    await conn.execute(INSERT_OUTBOX, {"t": ctx.tenant_id, "payload": json.dumps(payload)})
    return job, False


async def fetch(conn: AsyncConnection, query: Any, row_id: uuid.UUID) -> Any:
    return (await conn.execute(query, {"id": row_id})).first()
