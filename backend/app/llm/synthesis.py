"""The four LLM task types: build a prompt from the tenant's data, call the boundary, materialize.

Runs in the worker. A job is finished once (guarded UPDATE); a second delivery of the same message
finds it finished, or meets the boundary's idempotency claim, and changes nothing.
"""

from __future__ import annotations

import json
import uuid
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, text

from app.core.db import tenant_transaction_sync
from app.core.settings import get_settings
from app.core.tenancy import TenantContext
from app.llm.boundary import Boundary, CallOutcome
from app.outbox import relay as outbox

TASK_TYPES = ("route", "explanation", "investigation", "budget_optimization")

JOB = text("SELECT task_type, request_id, question, status FROM llm_jobs WHERE id = :job_id")
CHANNELS = text(
    "SELECT channel, sum(revenue_cents)::bigint AS revenue, sum(conversions)::bigint AS conversions "
    "FROM attribution_results WHERE model = 'last_touch' GROUP BY channel ORDER BY channel"
)
DEAD_LETTERS = text("SELECT reason_code, count(*) AS n FROM dead_letter_events GROUP BY 1 ORDER BY 1")
FINISH_JOB = text(
    "UPDATE llm_jobs SET status = :status, call_id = :call_id, result = CAST(:result AS jsonb), finished_at = now() "
    "WHERE id = :job_id AND status = 'queued'"
)
INVESTIGATION = text(
    "INSERT INTO investigations (tenant_id, user_id, job_id, findings) VALUES (:t, :u, :job_id, CAST(:f AS jsonb)) "
    "ON CONFLICT (job_id) DO UPDATE SET findings = investigations.findings RETURNING id"
)
OPTIMIZATION = text(
    "INSERT INTO budget_optimization_jobs (tenant_id, user_id, job_id, recommended_allocation, rationale) "
    "VALUES (:t, :u, :job_id, CAST(:a AS jsonb), :r) "
    "ON CONFLICT (job_id) DO UPDATE SET rationale = budget_optimization_jobs.rationale RETURNING id"
)


@lru_cache(maxsize=1)
def default_boundary() -> Boundary:
    return Boundary.from_settings(get_settings())


def _channels(conn: Connection) -> list[Any]:
    return list(conn.execute(CHANNELS))


def build_prompt(conn: Connection, task_type: str, question: str) -> str:
    channels = "; ".join(f"{r.channel}: {r.revenue} cents from {r.conversions} conversions" for r in _channels(conn))
    if task_type == "route":
        return f"Which analysis answers this request best (explanation, investigation, budget)? {question}"
    if task_type == "explanation":
        return f"Explain these last-touch attribution results to a marketer. {channels or 'No results yet.'} {question}"
    if task_type == "investigation":
        rejects = "; ".join(f"{r.reason_code}: {r.n}" for r in conn.execute(DEAD_LETTERS)) or "none"
        return (
            f"Investigate data-quality anomalies. Rejected webhooks by reason: {rejects}. "
            f"Revenue: {channels}. {question}"
        )
    return f"Recommend next month's budget split across channels given: {channels or 'no data'}. {question}"


def allocation(channels: list[Any]) -> dict[str, float]:
    """Revenue-proportional shares (deterministic); the model's text is the rationale beside them."""
    total = sum(int(r.revenue) for r in channels if r.channel != "unattributed")
    if total <= 0:
        return {}
    return {r.channel: round(int(r.revenue) / total, 4) for r in channels if r.channel != "unattributed"}


def run_job(
    ctx: TenantContext, job_id: uuid.UUID, boundary: Boundary | None = None, engine: Engine | None = None
) -> str:
    boundary = boundary or default_boundary()
    with tenant_transaction_sync(ctx, engine) as conn:
        job = conn.execute(JOB, {"job_id": job_id}).first()
        if job is None or job.status != "queued":
            return "skipped"
        prompt = build_prompt(conn, job.task_type, job.question)
    outcome = boundary.call(ctx, job.task_type, job.request_id, prompt)
    if outcome.status == "pending":
        return "pending"  # another delivery holds the claim and will finish the job
    with tenant_transaction_sync(ctx, engine) as conn:
        result = {"text": outcome.text, "call": outcome.as_dict()}
        if outcome.status == "succeeded":
            result.update(_materialize(conn, ctx, job.task_type, job_id, outcome))
        conn.execute(
            FINISH_JOB,
            {"job_id": job_id, "status": outcome.status, "call_id": outcome.call_id, "result": json.dumps(result)},
        )
        outbox.complete(conn, "llm_task", job_id)
    return outcome.status


def _materialize(
    conn: Connection, ctx: TenantContext, task_type: str, job_id: uuid.UUID, outcome: CallOutcome
) -> dict[str, Any]:
    ids = {"t": ctx.tenant_id, "u": ctx.user_id, "job_id": job_id}
    if task_type == "investigation":
        findings = {
            "summary": outcome.text,
            "rejected_webhooks": {r.reason_code: int(r.n) for r in conn.execute(DEAD_LETTERS)},
        }
        return {"investigation_id": str(conn.execute(INVESTIGATION, {**ids, "f": json.dumps(findings)}).scalar_one())}
    if task_type == "budget_optimization":
        shares = allocation(_channels(conn))
        row = conn.execute(OPTIMIZATION, {**ids, "a": json.dumps(shares), "r": outcome.text or ""}).scalar_one()
        return {"budget_optimization_id": str(row)}
    return {}
