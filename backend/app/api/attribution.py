"""Attribution jobs and results (logic in app.services.attribution)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.api.deps import Tenant
from app.core.db import tenant_transaction
from app.core.problems import ProblemError
from app.core.settings import get_settings
from app.services import attribution

router = APIRouter(prefix="/api/v1/attribution", tags=["attribution"])


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _job_body(row: Any) -> dict[str, Any]:
    return {
        "job_id": str(row.id),
        "model": row.model,
        "status": row.status,
        "params": row.params,
        "result": row.result,
        "fallback_event": row.fallback_event,
        "error": row.error,
        "created_at": _stamp(row.created_at),
        "started_at": _stamp(row.started_at),
        "finished_at": _stamp(row.finished_at),
    }


@router.post("/jobs", status_code=202)
async def create_job(request: attribution.JobRequest, ctx: Tenant) -> JSONResponse:
    async with tenant_transaction(ctx) as conn:
        job = await attribution.create_job(conn, ctx.tenant_id, request, get_settings())
    return JSONResponse(
        {"job_id": str(job.id), "status": job.status, "model": request.model}, status_code=202
    )


@router.get("/jobs/{job_id}")
async def get_job(job_id: uuid.UUID, ctx: Tenant) -> dict[str, Any]:
    async with tenant_transaction(ctx) as conn:
        row = await attribution.get_job(conn, job_id)
    if row is None:
        raise ProblemError(404, "Not Found", "no such attribution job", "job_not_found")
    return _job_body(row)


@router.get("/results")
async def results(
    ctx: Tenant,
    model: Literal["last_touch", "bayesian"] = "last_touch",
    start: Annotated[date | None, Query(description="first day (UTC), default 30 days before end")] = None,
    end: Annotated[date | None, Query(description="last day (UTC), default today")] = None,
) -> dict[str, Any]:
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=30)
    if start > end:
        raise ProblemError(422, "Unprocessable Content", "start must not be after end", "invalid_window")
    if (end - start).days > 3660:
        raise ProblemError(422, "Unprocessable Content", "window longer than ten years", "invalid_window")
    async with tenant_transaction(ctx) as conn:
        channels = await attribution.last_touch_channels(conn, start, end)
        body: dict[str, Any] = {
            "model": model,
            "served_model": "last_touch",
            "fallback_event": None,
            "window": {"start": start.isoformat(), "end": end.isoformat()},
            "channels": channels,
            "total_revenue_cents": sum(c["revenue_cents"] for c in channels),
        }
        if model == "bayesian":
            latest = await attribution.latest_bayesian(conn)
            if latest is not None and latest.status == "succeeded":
                body.update(served_model="bayesian", job_id=str(latest.id), posterior=latest.result)
            elif latest is not None:
                body.update(fallback_event=latest.fallback_event, job_id=str(latest.id))
    return body
