"""Worker tasks. Each is idempotent: the PostgreSQL transport may deliver a message twice."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from celery import Task

from app.attribution import jobs, last_touch
from app.core.db import sync_engine, tenant_transaction_sync
from app.core.settings import get_settings
from app.core.tenancy import TenantContext
from app.llm import synthesis
from app.reconciliation import runs as reconciliation_runs
from app.services.outbox import RECOMPUTE_TASK, RECONCILE_TASK, RELAY_HEALTH_SQL, RUN_JOB_TASK
from app.worker.celery_app import PROBE_TASK, celery_app

log = logging.getLogger(__name__)

TIME_LIMIT_ERRORS = (SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError)


def _context(tenant_id: str) -> TenantContext:
    return TenantContext(uuid.UUID(tenant_id), "worker")


@celery_app.task(name=PROBE_TASK, ignore_result=False, bind=True)
def probe(self: Task, sent_at: float | None = None) -> dict[str, Any]:
    """The health probe: proves a message went through the broker and a child process answered.
    With ``sent_at`` (the sender's clock, same host) it also reports the enqueue-to-start latency."""
    started = time.time()
    answer: dict[str, Any] = {"hostname": socket.gethostname(), "at": started, "worker": self.request.hostname}
    if sent_at is not None:
        answer["queue_latency_ms"] = round((started - sent_at) * 1000, 3)
    answer["relay"] = relay_health(str(self.request.hostname))
    return answer


def relay_health(worker: str) -> dict[str, Any] | None:
    """This worker's outbox relay, as its heartbeat row says (None: it never beat)."""
    with sync_engine().connect() as conn:
        row = conn.execute(RELAY_HEALTH_SQL, {"worker": worker}).first()
    return dict(row._mapping) if row is not None else None


def _register_llm_task(task_type: str) -> None:
    """One Celery task per LLM task type; its name is the ledger's ``endpoint``."""

    @celery_app.task(name=task_type, ignore_result=True)
    def run(tenant_id: str, user_id: str, job_id: str) -> str:
        return synthesis.run_job(TenantContext(uuid.UUID(tenant_id), user_id), uuid.UUID(job_id))


for _task_type in synthesis.TASK_TYPES:
    _register_llm_task(_task_type)


@celery_app.task(name=RECONCILE_TASK, ignore_result=True)
def reconcile(tenant_id: str, run_id: str) -> str:
    return reconciliation_runs.execute(_context(tenant_id), uuid.UUID(run_id), get_settings())


@celery_app.task(name=RECOMPUTE_TASK, ignore_result=True)
def recompute_last_touch(tenant_id: str, up_to_outbox_id: int) -> int:
    settings = get_settings()
    with tenant_transaction_sync(_context(tenant_id)) as conn:
        return last_touch.recompute(conn, uuid.UUID(tenant_id), settings.attribution_lookback_days, up_to_outbox_id)


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
        with tenant_transaction_sync(_context(str(tenant_id))) as conn:
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


@celery_app.task(name=RUN_JOB_TASK, base=AttributionJobTask, ignore_result=False)
def run_attribution_job(tenant_id: str, job_id: str, deadline_s: float) -> dict[str, Any]:
    settings = get_settings()
    ctx, job = _context(tenant_id), uuid.UUID(job_id)
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
