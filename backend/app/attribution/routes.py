"""Attribution jobs and results (logic in app.attribution.service)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from app.attribution import service as attribution
from app.attribution.schemas import Job, JobCreated, Results
from app.core.problems import ProblemError
from app.core.schemas import iso_or_none, problems
from app.core.settings import get_settings
from app.tenants.auth import Tenant, TenantDB

router = APIRouter(prefix="/api/v1/attribution", tags=["attribution"], responses=problems(400, 401, 422))


ISO_DAY = r"^\d{4}-\d{2}-\d{2}$"


def _day(value: str | None) -> date | None:
    """A calendar day from YYYY-MM-DD; an impossible one (2026-02-30) is a 422, not a guess."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ProblemError(422, "Unprocessable Content", f"{value!r} is not a calendar day", "invalid_window") from None


def _job_body(row: Any) -> dict[str, Any]:
    return {
        "job_id": str(row.id),
        "model": row.model,
        "status": row.status,
        "params": row.params,
        "result": row.result,
        "fallback_event": row.fallback_event,
        "error": row.error,
        "created_at": iso_or_none(row.created_at),
        "started_at": iso_or_none(row.started_at),
        "finished_at": iso_or_none(row.finished_at),
    }


@router.post("/jobs", status_code=202, response_model=JobCreated)
async def create_job(request: attribution.JobRequest, ctx: Tenant, conn: TenantDB) -> JobCreated:
    job = await attribution.create_job(conn, ctx.tenant_id, request, get_settings())
    return JobCreated(job_id=str(job.id), status=job.status, model=request.model)


@router.get("/jobs/{job_id}", response_model=Job, responses=problems(404))
async def get_job(job_id: uuid.UUID, ctx: Tenant, conn: TenantDB) -> dict[str, Any]:
    row = await attribution.get_job(conn, job_id)
    if row is None:
        raise ProblemError(404, "Not Found", "no such attribution job", "job_not_found")
    return _job_body(row)


@router.get(
    "/results",
    response_model=Results,
    openapi_extra={"x-cross-field-rules": ["start <= end", "end - start <= 3660 days"]},
)
async def results(
    ctx: Tenant,
    conn: TenantDB,
    model: Literal["last_touch", "bayesian"] = "last_touch",
    start: Annotated[
        str | None,
        Query(
            pattern=ISO_DAY,
            description="first day (UTC), default 30 days before end; not after end",
            json_schema_extra={"format": "date"},
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(pattern=ISO_DAY, description="last day (UTC), default today", json_schema_extra={"format": "date"}),
    ] = None,
) -> dict[str, Any]:
    last = _day(end) or datetime.now(UTC).date()
    first = _day(start) or last - timedelta(days=30)
    if first > last:
        raise ProblemError(422, "Unprocessable Content", "start must not be after end", "invalid_window")
    if (last - first).days > 3660:
        raise ProblemError(422, "Unprocessable Content", "window longer than ten years", "invalid_window")
    channels = await attribution.last_touch_channels(conn, first, last)
    body: dict[str, Any] = {
        "model": model,
        "served_model": "last_touch",
        "fallback_event": None,
        "window": {"start": first.isoformat(), "end": last.isoformat()},
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
