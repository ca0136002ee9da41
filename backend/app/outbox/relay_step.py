"""The outbox relay runs in the worker's main process, on a thread of its own.

It used to run inside the api, where its broker writes (kombu's SQL transport, synchronous) held
the interpreter lock between webhooks and took a noticeable share of the api's CPU under load. The
worker's main process only hands messages to its pool children, so the relay's work delays nothing
there. Every worker runs one; replicas claim rows with SKIP LOCKED, so none is sent twice at once
(``app.outbox.relay``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from celery import bootsteps

from app.core.db import dispose_async_engine
from app.core.settings import get_settings
from app.outbox.relay import Dispatch, Publish, run_relay

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0


def celery_publisher(app: Any) -> Publish:
    """Publishing through the worker's own Celery app, on the queue and with the options planned."""

    def publish(dispatch: Dispatch) -> None:
        app.send_task(dispatch.task, args=dispatch.args, **dispatch.options)

    return publish


def _not_started(dispatch: Dispatch) -> None:
    raise RuntimeError(f"the outbox relay published {dispatch.task} before its worker started")


class OutboxRelay(bootsteps.StartStopStep):  # type: ignore[misc]
    """Starts the relay loop with the worker and stops it, within STOP_TIMEOUT_S, with the worker."""

    requires = {"celery.worker.components:Pool"}  # the pool forks its children before the thread starts

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopping = False
        self._name = "unknown"
        self._publish: Publish = _not_started

    def start(self, worker: Any) -> None:
        self._name = str(worker.hostname)
        self._publish = celery_publisher(worker.app)
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()
        if self._started.wait(timeout=STOP_TIMEOUT_S) and self._thread.is_alive():
            log.info("outbox relay started for %s", self._name)
        else:
            log.error("outbox relay did not start for %s; see the traceback above", self._name)

    def stop(self, worker: Any) -> None:
        self._stopping = True
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)

    def _run(self) -> None:
        async def relay() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._started.set()
            try:
                await run_relay(get_settings(), self._stop, self._name, self._publish)
            finally:
                await dispose_async_engine()

        try:
            asyncio.run(relay())
        except BaseException:
            # Nothing restarts the thread: its heartbeat goes stale and /health/worker fails, which
            # is what an operator's alert watches; this line says why.
            log.critical("outbox relay thread died", exc_info=True)
            raise
        if not self._stopping:
            log.critical("outbox relay thread ended without being asked to stop")
