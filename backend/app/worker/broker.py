"""The PostgreSQL broker, woken by NOTIFY instead of sleeping out its polling interval.

kombu's SQL transport finds new messages by polling: after a pass over the queues finds nothing,
it sleeps ``polling_interval`` before looking again, so a task waits up to one interval before a
worker sees it, and longer when the worker was between passes. Here every publish also sends a
``NOTIFY`` in the transaction that stores the message (PostgreSQL delivers it at commit, so a
consumer never wakes before the row is visible), and the consumer waits on ``LISTEN`` for at most
the same interval instead of sleeping. Polling stays as the safety net: a notification lost while
the listener reconnects costs at most one interval, as before.

``install()`` registers it; ``broker_url()`` turns kombu's ``sqla+postgresql://`` into its scheme
(with BROKER_WAKEUPS=false the URL, and kombu's polling-only transport, stay as they are).
"""

from __future__ import annotations

import contextlib
import logging
import time
from json import loads
from queue import Empty
from typing import Any

import psycopg
from kombu import transport as kombu_transports
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from kombu.utils.encoding import bytes_to_str
from kombu.utils.objects import cached_property
from sqlalchemy import text

log = logging.getLogger(__name__)

WAKEUP_CHANNEL = "kombu_wakeup"
FULL_RECHECK_S = 0.05
NOTIFY_SQL = text(f"NOTIFY {WAKEUP_CHANNEL}")


# Takes the queue's oldest visible message as kombu's own ``_get`` does, in one statement: kombu reads
# the queue's row, then the message FOR UPDATE, then flushes the update, each a round trip through
# the ORM, on every look at every queue. Like kombu's flush, it stamps the message's "timestamp"
# (NULL until then; the writer's local time) with the time it was taken, which is what housekeeping's
# broker retention counts from. SKIP LOCKED: a message another consumer is taking is passed over, not
# waited for, and cannot be taken twice (its row stays locked until its taker commits it invisible).
TAKE_SQL = """
UPDATE {messages} SET visible = false, timestamp = localtimestamp
WHERE id = (
    SELECT m.id FROM {messages} m JOIN {queues} q ON q.id = m.queue_id
    WHERE q.name = :queue AND m.visible
    ORDER BY m.timestamp, m.id
    LIMIT 1
    FOR UPDATE OF m SKIP LOCKED
) AND visible
RETURNING payload
"""


class NotifyingChannel(kombu_sqlalchemy.Channel):
    # kombu's two base classes name the second argument differently (message, payload).
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # Queued in the session's transaction before kombu adds the message and commits: one commit
        # makes both visible, the row first. (The first message to a new queue commits the queue's
        # row, and the notification with it, early; that consumer finds it on the next poll.)
        self.session.execute(NOTIFY_SQL)
        super()._put(queue, payload, **kwargs)

    @cached_property
    def _take(self) -> Any:
        return text(TAKE_SQL.format(messages=self.message_cls.__tablename__, queues=self.queue_cls.__tablename__))

    def _get(self, queue: Any, timeout: Any = None) -> Any:  # kombu's SQL channel takes no timeout either
        try:
            row = self.session.execute(self._take, {"queue": queue}).first()
        finally:
            self.session.commit()
        if row is None:
            raise Empty()
        return loads(bytes_to_str(row[0]))


def listener_dsn(engine_url: str) -> str:
    """The transport's SQLAlchemy URL (``postgresql://`` or ``postgresql+driver://``) as a libpq URI."""
    scheme, rest = engine_url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


class Wakeups:
    """A LISTEN connection; ``wait(t)`` returns at the first notification or after ``t`` seconds.
    Any failure closes it and waits out ``t`` instead (the next wait reconnects)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.Connection[Any] | None = None
        self._warned = False

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
            self._conn.execute(f"LISTEN {WAKEUP_CHANNEL}")
        return self._conn

    def wait(self, timeout: float) -> None:
        try:
            conn = self._connection()
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                break
            for _ in conn.notifies(timeout=0):  # drop the rest of a burst: one pass reads them all
                pass
        except (psycopg.Error, OSError):
            if not self._warned:
                log.warning("broker wake-up listener unavailable; polling only", exc_info=True)
                self._warned = True
            self.close()
            time.sleep(timeout)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                self._conn.close()
            self._conn = None


class NotifiedTransport(kombu_sqlalchemy.Transport):
    Channel = NotifyingChannel

    @cached_property
    def wakeups(self) -> Wakeups:
        assert self.client is not None
        return Wakeups(listener_dsn(self.client.hostname))  # kombu keeps the engine URL there

    def drain_events(self, connection: Any, timeout: float | None = None, **_: Any) -> None:
        """kombu's loop (a pass over the queues, then wait), with the wait on LISTEN."""
        started = time.monotonic()
        interval = self.polling_interval
        if timeout and interval and interval > timeout:
            interval = timeout
        while True:
            try:
                assert self.cycle is not None
                self.cycle.get(self._deliver, timeout=timeout)
            except Empty:
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise TimeoutError() from None
                if interval is not None:
                    self.wakeups.wait(min(interval, FULL_RECHECK_S) if self.full() else interval)
            else:
                return

    def full(self) -> bool:
        """A consuming channel may take no more now (its prefetch is used up: every pool process
        busy). Its pass found nothing without asking the database, and the notification of what
        waits may be long gone: the slot that frees is announced by no NOTIFY, so look again soon,
        as often as before wake-ups, which costs no query while it stays full."""
        return any(channel._consumers and not channel.qos.can_consume() for channel in self.channels)

    def close_connection(self, connection: Any) -> None:
        if "wakeups" in self.__dict__:
            self.wakeups.close()
        super().close_connection(connection)


ALIAS = "sqlanotify"  # a scheme of its own: kombu caches each alias's class once resolved


def install() -> None:
    """Register this transport with kombu under ALIAS, in this process."""
    kombu_transports.TRANSPORT_ALIASES[ALIAS] = f"{__name__}:NotifiedTransport"


def broker_url(url: str, *, wakeups: bool) -> str:
    """The broker URL kombu should use: with wake-ups, kombu's ``sqla+`` scheme becomes this
    transport's; without them (BROKER_WAKEUPS=false, the benchmark's baseline) and for any other
    broker (amqp://) the URL is left as it is."""
    return ALIAS + url[len("sqla") :] if wakeups and url.startswith("sqla+") else url
