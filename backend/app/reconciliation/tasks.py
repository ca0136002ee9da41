"""The reconciliation task: one run, fetched, compared and written (``app.reconciliation.runs``)."""

from __future__ import annotations

import uuid

from celery import shared_task

from app.core.settings import get_settings
from app.core.tenancy import worker_context
from app.outbox.relay import RECONCILE_TASK
from app.reconciliation import runs


@shared_task(name=RECONCILE_TASK, ignore_result=True)
def reconcile(tenant_id: str, run_id: str) -> str:
    return runs.execute(worker_context(tenant_id), uuid.UUID(run_id), get_settings())
