"""The LLM tasks: one Celery task per task type, whose name is the ledger's ``endpoint``."""

from __future__ import annotations

import uuid

from celery import shared_task

from app.core.tenancy import TenantContext
from app.llm import synthesis


def _register(task_type: str) -> None:
    @shared_task(name=task_type, ignore_result=True)
    def run(tenant_id: str, user_id: str, job_id: str) -> str:
        return synthesis.run_job(TenantContext(uuid.UUID(tenant_id), user_id), uuid.UUID(job_id))


for _task_type in synthesis.TASK_TYPES:
    _register(_task_type)
