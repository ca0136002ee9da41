from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

TaskType = Literal["route", "explanation", "investigation", "budget_optimization"]


class LLMJobCreated(BaseModel):
    job_id: str
    status: Literal["queued", "succeeded", "blocked", "failed"]
    task_type: TaskType
    duplicate: bool


class LLMJob(BaseModel):
    job_id: str
    task_type: TaskType
    request_id: str
    status: Literal["queued", "succeeded", "blocked", "failed"]
    result: dict[str, Any] | None
    created_at: str
    finished_at: str | None


class Investigation(BaseModel):
    investigation_id: str
    job_id: str
    findings: dict[str, Any]
    created_at: str


class BudgetOptimization(BaseModel):
    budget_optimization_id: str
    job_id: str
    recommended_allocation: dict[str, float]
    rationale: str
    created_at: str
