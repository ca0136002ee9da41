"""Reconciliation runs and status (logic in app.services.reconciliation and app.reconciliation)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.api.deps import Tenant
from app.core.db import tenant_transaction
from app.core.problems import ProblemError
from app.schemas.common import problems
from app.schemas.reconciliation import ConnectionSaved, ReconciliationStatus, Run, RunCreated
from app.services import reconciliation
from app.services.reconciliation import Platform

router = APIRouter(prefix="/api/v1", tags=["reconciliation"], responses=problems(400, 401, 422))


@router.post("/reconciliation/runs", status_code=202, response_model=RunCreated)
async def create_run(request: reconciliation.RunRequest, ctx: Tenant) -> RunCreated:
    async with tenant_transaction(ctx) as conn:
        run = await reconciliation.request_run(conn, ctx.tenant_id, request)
    return RunCreated(run_id=str(run.id), status=run.status)


@router.get("/reconciliation/runs/{run_id}", response_model=Run, responses=problems(404))
async def get_run(run_id: uuid.UUID, ctx: Tenant) -> Run:
    async with tenant_transaction(ctx) as conn:
        run = await reconciliation.get_run(conn, run_id)
    if run is None:
        raise ProblemError(404, "Not Found", "no such reconciliation run", "run_not_found")
    return Run.model_validate(run)


@router.get("/reconciliation/status", response_model=ReconciliationStatus)
async def get_status(ctx: Tenant) -> ReconciliationStatus:
    async with tenant_transaction(ctx) as conn:
        return ReconciliationStatus.model_validate(await reconciliation.status(conn))


@router.put("/platform-connections/{platform}", response_model=ConnectionSaved)
async def save_connection(
    platform: Platform, request: reconciliation.ConnectionRequest, ctx: Tenant
) -> ConnectionSaved:
    async with tenant_transaction(ctx) as conn:
        await reconciliation.save_connection(conn, ctx.tenant_id, platform, request.api_key)
    return ConnectionSaved(platform=platform, status="saved")
