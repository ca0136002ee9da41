"""LLM synthesis tasks through the boundary (logic in app.llm.service and app.llm)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.core.problems import ProblemError
from app.core.schemas import iso_or_none, problems
from app.llm import service as llm_jobs
from app.llm.schemas import BudgetOptimization, Investigation, LLMJob, LLMJobCreated, TaskType
from app.tenants.auth import Tenant, TenantDB

router = APIRouter(prefix="/api/v1", tags=["llm"], responses=problems(400, 401, 422))


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"no such {what}", f"{what.replace(' ', '_')}_not_found")


@router.post(
    "/llm/{task_type}",
    status_code=202,
    response_model=LLMJobCreated,
    responses={
        200: {"model": LLMJobCreated, "description": "duplicate request_id: the existing job"},
        **problems(409),
    },
)
async def request_task(
    task_type: TaskType, request: llm_jobs.LLMTaskRequest, ctx: Tenant, conn: TenantDB
) -> JSONResponse:
    try:
        job, duplicate = await llm_jobs.request_task(conn, ctx, task_type, request)
    except llm_jobs.RequestIdTakenError:
        raise ProblemError(
            409,
            "Conflict",
            f"request_id is already in use in this tenant for {task_type} tasks; send a new request_id",
            "request_id_conflict",
        ) from None
    body = LLMJobCreated(job_id=str(job.id), status=job.status, task_type=task_type, duplicate=duplicate)
    return JSONResponse(body.model_dump(), status_code=200 if duplicate else 202)


@router.get("/llm/jobs/{job_id}", response_model=LLMJob, responses=problems(404))
async def get_job(job_id: uuid.UUID, ctx: Tenant, conn: TenantDB) -> LLMJob:
    row = await llm_jobs.fetch(conn, llm_jobs.GET_JOB, job_id)
    if row is None:
        raise _not_found("llm job")
    return LLMJob(
        job_id=str(row.id),
        task_type=row.task_type,
        request_id=row.request_id,
        status=row.status,
        result=row.result,
        created_at=row.created_at.isoformat(),
        finished_at=iso_or_none(row.finished_at),
    )


@router.get("/investigations/{investigation_id}", response_model=Investigation, responses=problems(404))
async def get_investigation(investigation_id: uuid.UUID, ctx: Tenant, conn: TenantDB) -> Investigation:
    row = await llm_jobs.fetch(conn, llm_jobs.GET_INVESTIGATION, investigation_id)
    if row is None:
        raise _not_found("investigation")
    return Investigation(
        investigation_id=str(row.id),
        job_id=str(row.job_id),
        findings=row.findings,
        created_at=row.created_at.isoformat(),
    )


@router.get("/budget-optimizations/{optimization_id}", response_model=BudgetOptimization, responses=problems(404))
async def get_budget_optimization(optimization_id: uuid.UUID, ctx: Tenant, conn: TenantDB) -> BudgetOptimization:
    row = await llm_jobs.fetch(conn, llm_jobs.GET_OPTIMIZATION, optimization_id)
    if row is None:
        raise _not_found("budget optimization")
    return BudgetOptimization(
        budget_optimization_id=str(row.id),
        job_id=str(row.job_id),
        recommended_allocation=row.recommended_allocation,
        rationale=row.rationale,
        created_at=row.created_at.isoformat(),
    )
