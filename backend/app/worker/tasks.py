"""Worker tasks. Each is idempotent: the PostgreSQL transport may deliver a message twice."""

from __future__ import annotations

import socket
import time
from typing import Any

from app.worker.celery_app import PROBE_TASK, celery_app


@celery_app.task(name=PROBE_TASK, ignore_result=False)
def probe() -> dict[str, Any]:
    """The health probe: proves a message went through the broker and a child process answered."""
    return {"hostname": socket.gethostname(), "at": time.time()}
