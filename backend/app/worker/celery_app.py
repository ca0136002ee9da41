"""The Celery application: PostgreSQL broker and result backend, four queues.

Nothing is built at import time: ``get_celery_app()`` builds the app from settings the first time
a process needs it (the worker at start, the api for its health probe, the relay's publisher), and
the domains' task modules register with it through ``shared_task`` when the app includes them.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun, worker_process_init
from kombu.entity import Queue
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from sqlalchemy.exc import OperationalError, PendingRollbackError

from app.core import logs
from app.core.db import reset_engines_after_fork
from app.core.settings import Settings, get_settings
from app.maintenance.ticker import HousekeepingTicker
from app.outbox.relay_step import OutboxRelay
from app.worker import broker
from app.worker.queues import QUEUES

PROBE_TASK = "app.worker.tasks.probe"
# Every module that defines tasks; the worker imports them when the app is finalized.
TASK_MODULES = [
    "app.worker.tasks",
    "app.attribution.tasks",
    "app.reconciliation.tasks",
    "app.llm.tasks",
    "app.maintenance.tasks",
]


def configure_kombu_transport(settings: Settings) -> None:
    """kombu's SQL transport polls the database. Its interval must be set on the transport class:
    ``broker_transport_options`` are handed to ``create_engine`` and break it.

    When PostgreSQL restarts, the channel's commit (in a ``finally``) hits the dead session and the
    OperationalError surfaces as PendingRollbackError, which the transport does not count as a
    connection error: the worker would stop as "unrecoverable". Counting it lets Celery reconnect
    with a fresh channel and session."""
    kombu_sqlalchemy.Transport.polling_interval = settings.broker_polling_interval_s
    cast(Any, kombu_sqlalchemy.Transport).connection_errors = (OperationalError, PendingRollbackError)
    broker.install()


def create_celery_app(settings: Settings) -> Celery:
    configure_kombu_transport(settings)
    app = Celery("attribution", include=TASK_MODULES, set_as_current=True)
    # Celery lets the CELERY_BROKER_URL variable win over broker_url; the read and write URLs win
    # over both, so this is where the wake-up transport's scheme takes effect (app.worker.broker).
    url = broker.broker_url(settings.celery_broker_url, wakeups=settings.broker_wakeups)
    app.conf.update(broker_read_url=url, broker_write_url=url)
    app.conf.update(
        broker_url=settings.celery_broker_url,
        result_backend=settings.celery_result_backend,
        broker_connection_retry_on_startup=True,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="housekeeping",
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_extended=True,
        result_expires=3600,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        timezone="UTC",
    )
    app.steps["worker"].add(OutboxRelay)
    app.steps["worker"].add(HousekeepingTicker)
    return app


@functools.cache
def get_celery_app() -> Celery:
    """This process's Celery app, built from settings on first use."""
    return create_celery_app(get_settings())


def pool_result_sessions() -> None:
    """In the api, reuse pooled result-backend connections instead of one new login per poll.

    Celery pools them only in forked workers; the api never forks, so pooling is safe there (it is
    not in the worker parent, whose children would inherit the sockets).
    """
    get_celery_app().backend.session_manager.forked = True


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    reset_engines_after_fork()


@setup_logging.connect
def _json_logs(loglevel: Any = None, **_: object) -> None:
    """JSON lines like the api's (app.core.logs); connecting here keeps Celery from its own setup."""
    logs.configure(loglevel or "INFO")


@task_prerun.connect
def _task_context(task: Any = None, args: Any = None, **_: object) -> None:
    """The request that caused the work (a message header the relay sets) and the task's tenant
    (every task's first argument) label the task's log lines."""
    request_id = getattr(task.request, "request_id", None) if task is not None else None
    logs.REQUEST_ID.set(str(request_id) if request_id else None)
    logs.TENANT_ID.set(str(args[0]) if args else None)


@task_postrun.connect
def _task_context_done(**_: object) -> None:
    logs.REQUEST_ID.set(None)
    logs.TENANT_ID.set(None)
