"""One housekeeping run: for each kind of finished work, delete batches older than its retention.

Every batch is one short transaction through ``housekeeping_prune`` (app_system's SECURITY DEFINER
function, migration 0023): at most ``HOUSEKEEPING_BATCH_SIZE`` rows (the function caps it at 5,000
whatever it is asked), rows another transaction holds skipped rather than waited for, and a
two-second lock timeout. A run stops a kind after a batch that came back short, or after
``HOUSEKEEPING_MAX_BATCHES``, leaving the rest to the next run, so one run's work is bounded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import Engine, text

from app.core.settings import Settings

log = logging.getLogger(__name__)

HOUSEKEEPING_TASK = "maintenance.housekeeping"
HOUSEKEEPING_QUEUE = "maintenance"
PRUNE_SQL = text("SELECT housekeeping_prune(:kind, :retention_s, :batch)")
# A task result is worth keeping until its reader has fetched it, and a reader waits at most a
# minute (the worker probe's timeout is capped at 60 s): a shorter broker retention must not
# delete a result that somebody is still waiting for.
RESULT_READ_WINDOW_S = 120.0
# The kinds the database function knows, in the order a run visits them.
KINDS = ("outbox", "broker_messages", "task_results", "llm_cache", "attribution_jobs", "llm_jobs")


@dataclass(frozen=True)
class Policy:
    """How long each kind is kept, and how much one run may do."""

    retention_s: dict[str, float]
    batch_size: int
    max_batches: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        broker = settings.retention_broker_s
        jobs = settings.retention_finished_jobs_s
        return cls(
            retention_s={
                "outbox": settings.retention_outbox_s,
                "broker_messages": broker,
                "task_results": max(broker, RESULT_READ_WINDOW_S),
                "llm_cache": settings.retention_llm_cache_s,
                "attribution_jobs": jobs,
                "llm_jobs": jobs,
            },
            batch_size=settings.housekeeping_batch_size,
            max_batches=settings.housekeeping_max_batches,
        )


def prune_batch(engine: Engine, kind: str, retention_s: float, batch: int) -> int:
    """Delete one batch of ``kind`` older than ``retention_s``, in a transaction of its own."""
    with engine.begin() as conn:
        return int(conn.execute(PRUNE_SQL, {"kind": kind, "retention_s": retention_s, "batch": batch}).scalar_one())


def prune_kind(engine: Engine, kind: str, policy: Policy) -> list[int]:
    """Batches of one kind until one comes back short (or the run's share is used); each batch's count."""
    batches: list[int] = []
    while len(batches) < policy.max_batches:
        removed = prune_batch(engine, kind, policy.retention_s[kind], policy.batch_size)
        batches.append(removed)
        if removed < policy.batch_size:
            break
    return batches


def run_once(engine: Engine, policy: Policy) -> dict[str, int]:
    """One housekeeping run over every kind; returns how many rows of each went."""
    started = time.monotonic()
    removed = {kind: sum(prune_kind(engine, kind, policy)) for kind in KINDS}
    log.info("housekeeping removed %s in %.3f s", removed, time.monotonic() - started)
    return removed
