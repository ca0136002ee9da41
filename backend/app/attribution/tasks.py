"""The attribution tasks: a tenant's last-touch recompute, and one attribution job under its time limit."""

from __future__ import annotations

import logging
import socket
import uuid
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from celery import Task, shared_task

from app.attribution import jobs, last_touch
from app.core.db import tenant_transaction_sync
from app.core.settings import get_settings
from app.core.tenancy import worker_context
from app.outbox.relay import RECOMPUTE_TASK, RUN_JOB_TASK

log = logging.getLogger(__name__)

TIME_LIMIT_ERRORS = (SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError)


@shared_task(name=RECOMPUTE_TASK, ignore_result=True)
def recompute_last_touch(tenant_id: str, up_to_outbox_id: int) -> int:
    """Last-touch results for the tenant's recent conversions. Its log line names the webhooks it
    covers: their request ids are in the line's ``request_id`` (the relay's message header)."""
    settings = get_settings()
    with tenant_transaction_sync(worker_context(tenant_id)) as conn:
        stored = last_touch.recompute(conn, uuid.UUID(tenant_id), settings.attribution_lookback_days, up_to_outbox_id)
    omitted = int(getattr(recompute_last_touch.request, "request_ids_omitted", None) or 0)
    more = f" ({omitted} more webhooks' request ids not listed)" if omitted else ""
    log.info("last-touch recompute up to outbox row %d stored %d results%s", up_to_outbox_id, stored, more)
    return stored


class AttributionJobTask(Task):  # type: ignore[misc]
    """Records a timed-out job with its fallback, whichever process notices the limit.

    A soft limit raises inside the child; a hard limit kills the child, and Celery calls this
    hook in the parent instead. Either way the job ends ``timed_out`` with last-touch served.
    """

    def on_failure(
        self, exc: BaseException, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], einfo: object
    ) -> None:
        tenant_id, job_id = [*args, kwargs.get("tenant_id"), kwargs.get("job_id")][:2]
        settings = get_settings()
        with tenant_transaction_sync(worker_context(str(tenant_id))) as conn:
            if isinstance(exc, TIME_LIMIT_ERRORS):
                jobs.time_out(
                    conn,
                    uuid.UUID(tenant_id),
                    uuid.UUID(job_id),
                    type(exc).__name__,
                    settings.attribution_lookback_days,
                )
            else:
                jobs.finish(conn, uuid.UUID(job_id), "failed", error=f"{type(exc).__name__}: {exc}"[:500])
        log.warning("attribution job %s ended by %s", job_id, type(exc).__name__)


@shared_task(name=RUN_JOB_TASK, base=AttributionJobTask, ignore_result=False)
def run_attribution_job(tenant_id: str, job_id: str, deadline_s: float) -> dict[str, Any]:
    settings = get_settings()
    ctx, job = worker_context(tenant_id), uuid.UUID(job_id)
    with tenant_transaction_sync(ctx) as conn:
        started = jobs.start(conn, job, deadline_s)
    if started is None:
        return {"job_id": job_id, "skipped": "already finished"}
    model, params = started
    if model == "last_touch":
        with tenant_transaction_sync(ctx) as conn:
            rows = last_touch.recompute(conn, ctx.tenant_id, settings.attribution_lookback_days)
            jobs.finish(conn, job, "succeeded", result={"model": "last_touch", "rows": rows})
        return {"job_id": job_id, "status": "succeeded", "hostname": socket.gethostname()}
    with tenant_transaction_sync(ctx) as conn:  # a read snapshot; the long computation holds no transaction
        x, y, channels = jobs.training_data(conn, int(params.get("window_days", 90)))
    result = jobs.run_bayesian_on(x, y, channels, params)
    with tenant_transaction_sync(ctx) as conn:
        jobs.finish(conn, job, "succeeded", result=result)
    return {"job_id": job_id, "status": "succeeded", "hostname": socket.gethostname()}
