"""Attribution jobs and results, api side: a job row and its outbox row commit together."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core import logs
from app.core.queries import query
from app.core.settings import Settings

MAX_DRAWS = 200_000  # bounds a job's memory: chains x draws x channels floats


def _integral(value: object) -> object:
    """JSON Schema counts 3.0 as an integer, so the contract does too: an integral float becomes the
    int; anything else goes on to the strict check unchanged (3.5 and "3" are refused)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(_integral)]


class BayesianParams(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")  # what the contract says, no coercion
    draws: Integer = Field(default=1000, ge=100, le=MAX_DRAWS)
    warmup: Integer = Field(default=500, ge=0, le=MAX_DRAWS)
    chains: Integer = Field(default=4, ge=2, le=8)
    seed: Integer = Field(default=0, ge=0)
    window_days: Integer = Field(default=90, ge=2, le=730)


class JobRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    model: Literal["last_touch", "bayesian"]
    params: BayesianParams = Field(default_factory=BayesianParams)
    time_limit_s: float | None = Field(
        default=None, ge=1, description="hard limit in seconds; the configured one is the most a job gets"
    )
    # Every number the schema allows is accepted (no cross-field rule for a client to trip on): the
    # soft limit is clamped to the hard one, and a fraction of a second rounds up to one second.
    soft_time_limit_s: float | None = Field(
        default=None,
        ge=0,
        description="0: no soft limit, only the hard kill; otherwise at least 1 s (smaller values round up) "
        "and at most the hard limit (larger values are clamped); default: the configured ratio",
    )

    def limits(self, settings: Settings) -> tuple[float, float]:
        """(soft, hard) seconds: the request's, never beyond the configured production limits."""
        hard = min(self.time_limit_s or settings.bayesian_hard_time_limit_s, settings.bayesian_hard_time_limit_s)
        ratio = settings.bayesian_soft_time_limit_s / settings.bayesian_hard_time_limit_s
        if self.soft_time_limit_s == 0:
            return 0.0, hard
        soft = max(1.0, self.soft_time_limit_s) if self.soft_time_limit_s else hard * ratio
        return min(soft, hard), hard


INSERT_JOB_SQL = text(
    "INSERT INTO attribution_jobs (tenant_id, model, params) "
    "VALUES (:tenant_id, :model, CAST(:params AS jsonb)) RETURNING id, status, created_at"
)
INSERT_JOB_OUTBOX_SQL = text(
    "INSERT INTO outbox (tenant_id, kind, payload) VALUES (:tenant_id, 'attribution_job', CAST(:payload AS jsonb))"
)
GET_JOB_SQL = text(
    "SELECT id, model, status, params, result, fallback_event, error, created_at, started_at, finished_at "
    "FROM attribution_jobs WHERE id = :job_id"
)
RESULTS_SQL = text(query("last_touch_channels"))
LATEST_BAYESIAN_SQL = text(
    """
    SELECT id, status, result, fallback_event, finished_at FROM attribution_jobs
    WHERE model = 'bayesian' AND status IN ('succeeded', 'timed_out')
    ORDER BY finished_at DESC LIMIT 1
    """
)


async def create_job(conn: AsyncConnection, tenant_id: uuid.UUID, request: JobRequest, settings: Settings) -> Any:
    soft, hard = request.limits(settings)
    params = request.params.model_dump() if request.model == "bayesian" else {}
    job = (
        await conn.execute(
            INSERT_JOB_SQL, {"tenant_id": tenant_id, "model": request.model, "params": json.dumps(params)}
        )
    ).one()
    payload = {"job_id": str(job.id), "time_limit_s": hard, "soft_time_limit_s": soft, **logs.correlation()}
    await conn.execute(INSERT_JOB_OUTBOX_SQL, {"tenant_id": tenant_id, "payload": json.dumps(payload)})
    return job


async def get_job(conn: AsyncConnection, job_id: uuid.UUID) -> Any:
    return (await conn.execute(GET_JOB_SQL, {"job_id": job_id})).first()


async def last_touch_channels(conn: AsyncConnection, start: date, end: date) -> list[dict[str, Any]]:
    rows = await conn.execute(RESULTS_SQL, {"start": start, "end": end})
    return [
        {"channel": r.channel, "revenue_cents": int(r.revenue_cents), "conversions": int(r.conversions)} for r in rows
    ]


async def latest_bayesian(conn: AsyncConnection) -> Any:
    return (await conn.execute(LATEST_BAYESIAN_SQL)).first()
