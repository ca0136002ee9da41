"""Reconciliation runs and status (logic in app.reconciliation.service and app.reconciliation)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.core.problems import ProblemError
from app.core.schemas import problems
from app.reconciliation import service as reconciliation
from app.reconciliation.schemas import ConnectionSaved, ReconciliationStatus, Run, RunCreated
from app.reconciliation.service import Platform
from app.tenants.auth import Tenant, TenantDB

router = APIRouter(prefix="/api/v1", tags=["reconciliation"], responses=problems(400, 401, 422))


@router.post(
    "/reconciliation/runs",
    status_code=202,
    response_model=RunCreated,
    openapi_extra={"x-cross-field-rules": ["window_start < window_end", "window_end - window_start <= 93 days"]},
)
async def create_run(request: reconciliation.RunRequest, ctx: Tenant, conn: TenantDB) -> RunCreated:
    run = await reconciliation.request_run(conn, ctx.tenant_id, request)
    return RunCreated(run_id=str(run.id), status=run.status)


@router.get("/reconciliation/runs/{run_id}", response_model=Run, responses=problems(404))
async def get_run(run_id: uuid.UUID, ctx: Tenant, conn: TenantDB) -> Run:
    run = await reconciliation.get_run(conn, run_id)
    if run is None:
        raise ProblemError(404, "Not Found", "no such reconciliation run", "run_not_found")
    return Run.model_validate(run)


@router.get("/reconciliation/status", response_model=ReconciliationStatus)
async def get_status(ctx: Tenant, conn: TenantDB) -> ReconciliationStatus:
    return ReconciliationStatus.model_validate(await reconciliation.status(conn))


@router.put("/platform-connections/{platform}", response_model=ConnectionSaved)
async def save_connection(
    platform: Platform, request: reconciliation.ConnectionRequest, ctx: Tenant, conn: TenantDB
) -> ConnectionSaved:
    await reconciliation.save_connection(conn, ctx.tenant_id, platform, request.api_key)
    return ConnectionSaved(platform=platform, status="saved")
