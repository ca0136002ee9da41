"""The intake's per-process cache of tenants' webhook signing secrets, kept current by the database.

Without it each webhook costs two round trips, its tenant's secrets and then its event; with it, one.
An entry is used only while this process LISTENs on ``webhook_secrets_changed``, where a trigger on
webhook_secrets (migration 0031) names the tenant whose secrets were added, rotated, re-sealed or
removed, at commit. The entry is dropped when this process handles that notification: PostgreSQL
does not make the commit wait for it, so a webhook that arrives just after a revocation can still be
checked against the old secret for as long as the notification takes to be handled, milliseconds on
an idle api, up to its event-loop lag under load.

What could make an entry outlive the truth, and what prevents it:

- The listening connection is lost: every entry is dropped and none is used until a new connection
  LISTENs again. One that stops answering without closing, or that answers but does not deliver
  notifications (a pooler in transaction mode), is caught by a heartbeat every ``HEARTBEAT_S``: a
  NOTIFY to itself whose echo must arrive within ``HEARTBEAT_TIMEOUT_S``.
- A fetch that raced a change: its result is stored only if no notification arrived since it began.
- A secret's grace running out: each secret carries the seconds it had left by the database's clock,
  counted down on this process's monotonic clock from before the fetch, so it ends here no later
  than in the database.
- Anything unforeseen: an entry is fetched again after ``WEBHOOK_SECRET_CACHE_S`` at the latest
  (0 turns the cache off).

Any role may NOTIFY the channel; a forged notification only drops entries, which costs a fetch.
Only tenants with a secret are kept (at most ``MAX_TENANTS``, oldest dropped first), so requests
naming random tenants cannot grow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.core.db import call_server_settings
from app.core.settings import get_settings, with_driver

log = logging.getLogger(__name__)

CHANNEL = "webhook_secrets_changed"
HEARTBEAT_CHANNEL = "webhook_secret_listener_heartbeat"  # a channel of its own: a payload on CHANNEL drops entries
LISTENER_NAME = "webhook-secret-listener"  # its application_name in pg_stat_activity
ALL_TENANTS = "*"
HEARTBEAT_S = 2.0
HEARTBEAT_TIMEOUT_S = 2.0
RECONNECT_S = 1.0
MAX_TENANTS = 10_000


@dataclass(frozen=True)
class TimedSecret:
    """An opened secret and the monotonic time it stops being in force (None: no end)."""

    secret: str
    ends_at: float | None


@dataclass(frozen=True)
class Entry:
    secrets: tuple[TimedSecret, ...]
    fetched_at: float


Fetch = Callable[[], Awaitable[Sequence[TimedSecret]]]


class SecretCache:
    """Entries per tenant, valid while ``listening`` is true (see the module's docstring)."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self.listening = False
        self._entries: dict[uuid.UUID, Entry] = {}
        self._changes = 0  # notifications and losses seen: a fetch that began before one is not kept

    def __len__(self) -> int:
        return len(self._entries)

    async def secrets(self, tenant_id: uuid.UUID, fetch: Fetch) -> list[str]:
        """The tenant's secrets in force now: from the cache when it may answer, else fetched."""
        now = self.clock()
        entry = self._entries.get(tenant_id) if self.listening else None
        if entry is None or now - entry.fetched_at >= self.max_age_s:
            changes_before = self._changes
            fetched = tuple(await fetch())
            entry = Entry(fetched, now)
            if fetched and self.listening and self.max_age_s > 0 and self._changes == changes_before:
                self._keep(tenant_id, entry)
        return [s.secret for s in entry.secrets if s.ends_at is None or s.ends_at > self.clock()]

    def _keep(self, tenant_id: uuid.UUID, entry: Entry) -> None:
        self._entries.pop(tenant_id, None)  # re-inserted last: the dict's order is the entries' age
        if len(self._entries) >= MAX_TENANTS:
            del self._entries[next(iter(self._entries))]
        self._entries[tenant_id] = entry

    def changed(self, payload: str) -> None:
        """A notification: drop the tenant it names (every tenant, for '*' or a payload that is not one)."""
        self._changes += 1
        try:
            self._entries.pop(uuid.UUID(payload), None)
        except ValueError:
            self._entries.clear()

    def start_listening(self) -> None:
        self._changes += 1
        self._entries.clear()  # a change may have gone unheard before this connection listened
        self.listening = True

    def stop_listening(self) -> None:
        self._changes += 1
        self.listening = False
        self._entries.clear()


class Listener:
    """Keeps a SecretCache's LISTEN connection up for as long as it runs, and the cache told."""

    def __init__(self, cache: SecretCache, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self.cache = cache
        self.connect = connect
        self._warned = False  # this outage was logged

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.cache.changed(payload)

    def _lost(self, _conn: object) -> None:
        self.cache.stop_listening()

    async def run(self) -> None:
        """Listen, and after any failure listen again RECONNECT_S later; said once per outage."""
        while True:
            try:
                await self._listen_once()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not self._warned:
                    log.warning("webhook secret cache off until its LISTEN connection is back (%s: %s)",
                                type(exc).__name__, exc)  # fmt: skip
                    self._warned = True
            except Exception:
                log.exception("webhook secret cache off: its listener failed unexpectedly; trying again")
            finally:
                self.cache.stop_listening()
            await asyncio.sleep(RECONNECT_S)

    async def _listen_once(self) -> None:
        conn = await self.connect()
        echoed = asyncio.Event()
        try:
            conn.add_termination_listener(self._lost)
            await conn.add_listener(CHANNEL, self._notified)
            await conn.add_listener(HEARTBEAT_CHANNEL, lambda *_: echoed.set())
            await heartbeat(conn, echoed)  # notifications do arrive, before the cache may answer
            self.cache.start_listening()
            self._warned = False
            while not conn.is_closed():
                await asyncio.sleep(HEARTBEAT_S)
                await heartbeat(conn, echoed)
        finally:
            conn.terminate()


async def heartbeat(conn: asyncpg.Connection, echoed: asyncio.Event) -> None:
    """NOTIFY this connection's own heartbeat channel and wait for the echo. An answer to a query
    alone would not do: a pooler in transaction mode answers queries and never delivers a
    notification. Raises TimeoutError when the echo does not come within HEARTBEAT_TIMEOUT_S."""
    echoed.clear()
    async with asyncio.timeout(HEARTBEAT_TIMEOUT_S):
        await conn.execute(f"NOTIFY {HEARTBEAT_CHANNEL}")
        await echoed.wait()


@dataclass
class _Running:
    cache: SecretCache
    task: asyncio.Task[None] | None


_per_loop: dict[asyncio.AbstractEventLoop, _Running] = {}


async def _connect_runtime() -> asyncpg.Connection:
    settings = get_settings()
    return await asyncpg.connect(
        with_driver(settings.database_url, "postgresql"),
        timeout=settings.db_call_timeout_s,
        server_settings={**call_server_settings(settings.db_call_timeout_s), "application_name": LISTENER_NAME},
    )


def secret_cache() -> SecretCache:
    """This event loop's cache; its listener starts with the first use (the cache answers from the
    database until the listener is up). WEBHOOK_SECRET_CACHE_S=0: no listener, every call fetches."""
    loop = asyncio.get_running_loop()
    running = _per_loop.get(loop)
    if running is None:
        cache = SecretCache(get_settings().webhook_secret_cache_s)
        task = None
        if cache.max_age_s > 0:
            task = loop.create_task(Listener(cache, _connect_runtime).run(), name="webhook-secret-listener")
        running = _per_loop[loop] = _Running(cache, task)
    return running.cache


async def close_secret_cache() -> None:
    """Stop this event loop's listener (the api's shutdown)."""
    running = _per_loop.pop(asyncio.get_running_loop(), None)
    if running is not None and running.task is not None:
        running.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.task


def timed(rows: Sequence[Any], opened: Callable[[str], str | None], fetched_at: float) -> list[TimedSecret]:
    """Rows of (sealed secret, seconds left) as secrets that open, each ending ``fetched_at`` plus its
    seconds left; one that does not open counts as absent."""
    found = []
    for sealed, seconds_left in rows:
        secret = opened(sealed)
        if secret is not None:
            found.append(TimedSecret(secret, None if seconds_left is None else fetched_at + seconds_left))
    return found
