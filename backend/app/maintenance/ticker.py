"""The housekeeping ticker: a thread in the worker's main process that sends the housekeeping task
to the ``maintenance`` queue every ``HOUSEKEEPING_INTERVAL_S`` (not at all with
``HOUSEKEEPING_ENABLED=false``).

Why not Celery beat: beat is one more process that must run exactly once per deployment (two of
them send every tick twice, none sends nothing, and nothing here would notice either), and it keeps
its schedule in a local file. The worker already runs a periodic loop of its own beside the pool
(the outbox relay, ``app.worker.relay``), and a tick is no more than a message: the work itself runs
in a pool child, under a time limit, on its own queue, so it never holds up attribution or LLM
tasks. Every worker replica ticks; that is harmless, as batches skip the rows another run holds and
a second run finds less, never more. A tick expires after one interval, so ticks queued behind a
busy or stopped worker do not pile up into a burst of runs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps

from app.core.settings import get_settings
from app.maintenance.housekeeping import HOUSEKEEPING_QUEUE, HOUSEKEEPING_TASK

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0


class HousekeepingTicker(bootsteps.StartStopStep):  # type: ignore[misc]
    """Starts ticking with the worker and stops with it."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        settings = get_settings()
        if not settings.housekeeping_enabled:
            log.warning("housekeeping is off (HOUSEKEEPING_ENABLED=false): finished work is kept")
            return
        interval = settings.housekeeping_interval_s
        self._thread = threading.Thread(
            target=self._run, args=(worker.app, interval), name="housekeeping-ticker", daemon=True
        )
        self._thread.start()

    def stop(self, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)

    def _run(self, app: Any, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                app.send_task(HOUSEKEEPING_TASK, queue=HOUSEKEEPING_QUEUE, expires=interval)
            except Exception:  # the broker may be down for a while; the next tick tries again
                log.exception("could not send the housekeeping task; next tick in %.0f s", interval)
