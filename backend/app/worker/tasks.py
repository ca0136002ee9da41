"""The worker's own task: the health probe. Each domain's tasks live in its ``tasks.py``
(``app.worker.celery_app.TASK_MODULES``); each is idempotent, since the PostgreSQL transport may
deliver a message twice."""

from __future__ import annotations

import socket
import time
from typing import Any

from celery import Task, shared_task

from app.core.db import sync_engine
from app.outbox.relay import RELAY_HEALTH_SQL
from app.worker.celery_app import PROBE_TASK


@shared_task(name=PROBE_TASK, ignore_result=False, bind=True)
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
