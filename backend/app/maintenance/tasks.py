"""The housekeeping task, run by the worker from the ``maintenance`` queue (``app.maintenance.ticker``
sends it). Idempotent like every task here: a second run finds less, never removes more."""

from __future__ import annotations

from celery import shared_task

from app.core.db import sync_engine
from app.core.settings import get_settings
from app.maintenance.housekeeping import HOUSEKEEPING_TASK, Policy, run_once

# A run is bounded (HOUSEKEEPING_MAX_BATCHES per kind); past this something is stuck, and the child
# is replaced rather than left holding a pool slot of the maintenance queue.
TIME_LIMIT_S = 600


@shared_task(name=HOUSEKEEPING_TASK, ignore_result=True, time_limit=TIME_LIMIT_S)
def housekeeping() -> dict[str, int]:
    return run_once(sync_engine(), Policy.from_settings(get_settings()))
