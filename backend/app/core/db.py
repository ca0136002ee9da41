"""Database access: one way per need. Every path sets the tenant context with the same signed
token (``app.core.tenancy``) inside its transaction, so row-level security sees the same tenant.

    need                                    use                         who
    a route's unit of work                  TenantDB (tenants.auth),    api routes
                                            i.e. tenant_transaction
    the webhook intake, per request         call(): one server-side     webhooks.intake
                                            function call on a bare     (passes a signed token)
                                            asyncpg pool
    a worker task or probe (sync code)      tenant_transaction_sync     worker tasks, readiness
    the LLM boundary's bookkeeping          statement_sync: one         llm.boundary
                                            function call that carries
                                            its signed context, one
                                            round trip (a plain read:
                                            tenant_statement_sync)
    before a tenant is known (API-key       system_transaction: no      tenants.auth, metrics
    lookup) or cross-tenant aggregates      tenant context, so RLS
    through app_system's functions          shows nothing by itself

Why the hot paths differ: per webhook, SQLAlchemy's async layers cost more than everything else
the api does, so the intake calls one function that sets its own tenant context and is its own
transaction; the boundary runs in sync worker code where its statements can all be sent before
any result is read, so a pipeline saves two round trips per call. docs/architecture.md has the
reasoning and the measurements' commands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from functools import lru_cache
from typing import Any

import asyncpg
import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, Engine, TextClause, create_engine, event, text
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.core.settings import get_settings, with_driver
from app.core.tenancy import SET_CONTEXT_SQL, TenantContext


class DatabaseUnreachableError(ConnectionError):
    """No connection to the database could be made (no server, no socket file, no route, no name)."""


@contextmanager
def unreachable_as_connection_error() -> Iterator[None]:
    """A failed connect raises whichever OSError the socket layer chose: a stopped server's unix
    socket file is gone, so asyncpg raises FileNotFoundError. Around connecting (and talking to the
    server) every OSError means the database is out of reach, which only here can be told apart from
    an OSError of the application's own; the api answers ConnectionError with a retryable 503."""
    try:
        yield
    except ConnectionError:
        raise
    except OSError as exc:
        raise DatabaseUnreachableError(f"cannot reach the database ({type(exc).__name__})") from exc


def report_unreachable(engine: AsyncEngine) -> AsyncEngine:
    """The engine, connecting so that an unreachable database raises ConnectionError."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        with unreachable_as_connection_error():
            return dialect.connect(*cargs, **cparams)

    return engine


@lru_cache(maxsize=1)
def async_engine() -> AsyncEngine:
    settings = get_settings()
    return report_unreachable(
        create_async_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_timeout=settings.db_call_timeout_s,
            # asyncpg's connect and statement deadlines: a partition answers 503, never a hang
            connect_args={"timeout": settings.db_call_timeout_s, "command_timeout": settings.db_call_timeout_s},
            hide_parameters=True,  # bound values (keys, payloads) never reach an error message or a log
        )
    )


PING_AFTER_IDLE_S = 1.0


def ping_when_idle(engine: Engine, idle_s: float = PING_AFTER_IDLE_S) -> Engine:
    """Check a pooled connection on checkout only when it sat idle for ``idle_s`` or more.

    ``pool_pre_ping`` pings on every checkout: a round trip per unit of work, a quarter of an LLM
    call's overhead. A connection used a moment ago is alive unless the server restarted in that
    moment; then the failure is detected on use and the pool drops every older connection.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi)
        except Exception as exc:
            if engine.dialect.is_disconnect(exc, dbapi, None):  # type: ignore[arg-type]
                raise DisconnectionError from exc  # the pool replaces the connection and tries again
            raise

    return engine


@lru_cache(maxsize=1)
def sync_engine() -> Engine:
    settings = get_settings()
    return ping_when_idle(create_engine(settings.sync_database_url, pool_size=5, max_overflow=5, hide_parameters=True))


_call_pools: dict[asyncio.AbstractEventLoop, asyncpg.Pool] = {}


async def _nothing_to_reset(_: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release (one more round trip per call): ``call`` statements only
    set transaction-local settings and hold no cursors, listeners or session locks. An open
    transaction is still rolled back by the pool itself."""


def call_server_settings(deadline_s: float) -> dict[str, str]:
    """Session settings of every call connection, so that a statement the api gave up on (``abandon``)
    does not run on, or hold a backend, for long: it stops a second after the api's deadline (and
    rolls back), and a backend whose client has gone quiet is ended within about a minute (TCP
    keepalive: 30 s idle, then 3 probes 10 s apart), not the operating system's two hours."""
    return {
        "statement_timeout": str(round((deadline_s + 1) * 1000)),
        "tcp_keepalives_idle": "30",
        "tcp_keepalives_interval": "10",
        "tcp_keepalives_count": "3",
    }


async def call_pool() -> asyncpg.Pool:
    """This event loop's asyncpg pool on the runtime DSN (asyncpg connections belong to one loop)."""
    loop = asyncio.get_running_loop()
    pool = _call_pools.get(loop)
    if pool is None:
        settings = get_settings()
        dsn = with_driver(settings.database_url, "postgresql")  # asyncpg's own DSN form
        # min_size=0: creating the pool connects nothing, so a database that is down fails the
        # request that needed it (503) rather than leaving a broken pool behind.
        created = await asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=settings.db_pool_size,
            reset=_nothing_to_reset,
            timeout=settings.db_call_timeout_s,  # connecting
            command_timeout=settings.db_call_timeout_s,
            server_settings=call_server_settings(settings.db_call_timeout_s),
        )
        pool = _call_pools.setdefault(loop, created)
        if pool is not created:  # another request made one meanwhile
            await created.close()
    return pool


async def call(sql: str, *args: object) -> list[asyncpg.Record]:
    """One statement (a function call that sets its own tenant context) as its own transaction.

    The api's problem handlers classify what PostgreSQL answers by SQLSTATE, as for the SQLAlchemy
    path. A connection asyncpg already knows is closed raises InterfaceError, which carries none:
    it surfaces as ConnectionError, answered like any lost socket (503 and Retry-After). So does a
    protocol state asyncpg cannot continue from (a server shutting down mid-statement), and getting
    a connection or an answer past DB_CALL_TIMEOUT_S raises TimeoutError (503 too).
    """
    deadline = get_settings().db_call_timeout_s
    try:
        with unreachable_as_connection_error():
            async with asyncio.timeout(deadline):  # one budget for connecting, waiting and answering
                pool = await call_pool()
                async with pool.acquire() as conn:
                    try:
                        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
                    except (asyncio.CancelledError, TimeoutError):  # our deadline, or asyncpg's own
                        abandon(conn)
                        raise
        return rows
    except asyncpg.InterfaceError as exc:
        if "closed" not in str(exc):
            raise  # a usage error, not an outage
        raise ConnectionError(f"database connection lost ({type(exc).__name__})") from exc
    except asyncpg.InternalClientError as exc:
        raise ConnectionError(f"database connection lost mid-statement ({type(exc).__name__})") from exc


def abandon(conn: asyncpg.Connection) -> None:
    """Close a connection whose statement was cut off, without waiting for anything.

    A statement cut off at the deadline makes asyncpg send PostgreSQL a cancel request on a new
    connection, and releasing the connection to the pool waits for that request, for up to
    command_timeout more. Across a partition the request cannot connect, so the caller would answer
    after twice its deadline (backend/tests/integration/test_database_deadline.py shows both).
    Closing the connection instead returns at once and drops the cancel request with it. The server
    side is bounded by the settings every call connection carries (call_server_settings): the
    statement stops at its own timeout, and TCP keepalive ends a backend whose client has gone.
    """
    with suppress(asyncpg.InterfaceError):  # already handed back to the pool (a pool closing)
        conn.terminate()


async def close_call_pools() -> None:
    for pool in _call_pools.values():
        await pool.close()
    _call_pools.clear()


async def dispose_async_engine() -> None:
    """Close the async engine's pooled connections while their event loop still runs."""
    if async_engine.cache_info().currsize:
        await async_engine().dispose()
    async_engine.cache_clear()


def reset_engines_after_fork() -> None:
    """Prefork children must not share the parent's sockets; drop inherited pools without closing them."""
    if sync_engine.cache_info().currsize:
        sync_engine().dispose(close=False)
    sync_engine.cache_clear()
    async_engine.cache_clear()


@asynccontextmanager
async def tenant_transaction(ctx: TenantContext) -> AsyncIterator[AsyncConnection]:
    """One async transaction scoped to a tenant (and user)."""
    async with async_engine().begin() as conn:
        await conn.execute(SET_CONTEXT_SQL, ctx.as_params())
        yield conn


@contextmanager
def tenant_transaction_sync(ctx: TenantContext, engine: Engine | None = None) -> Iterator[Connection]:
    """The same unit of work for sync code (worker tasks, probes)."""
    with (engine or sync_engine()).begin() as conn:
        conn.execute(SET_CONTEXT_SQL, ctx.as_params())
        yield conn


def pipelined(statement: str | TextClause) -> str:
    """A statement written like ``text()`` as psycopg's own SQL (``:name`` becomes ``%(name)s``)."""
    clause = text(statement) if isinstance(statement, str) else statement
    return str(clause.compile(dialect=PGDialect_psycopg()))  # type: ignore[no-untyped-call]


_SET_CONTEXT_PIPELINED = pipelined(SET_CONTEXT_SQL)


@contextmanager
def autocommit_connection(engine: Engine | None = None) -> Iterator[psycopg.Connection[object]]:
    """A pooled connection in autocommit mode for the block, handed back as it was taken: out of
    autocommit (the pool's other users run SQLAlchemy transactions), or discarded if it broke."""
    pooled = (engine or sync_engine()).raw_connection()
    conn = pooled.driver_connection
    assert isinstance(conn, psycopg.Connection)
    conn.autocommit = True
    try:
        yield conn
    except BaseException:
        try:
            conn.rollback()  # a no-op unless a transaction is still open (or failed)
        except psycopg.Error:
            pooled.invalidate()  # the connection is gone; the pool must not hand it out again
        raise
    finally:
        try:
            conn.autocommit = False
        except psycopg.Error:
            pooled.invalidate()
        pooled.close()


def statement_sync(statement: str, params: Mapping[str, Any], engine: Engine | None = None) -> list[Any]:
    """One statement as its own transaction, in one round trip, and its rows (as named tuples): for a
    function call that carries its own signed tenant context (the LLM boundary's steps pass it as
    their last argument and verify it before anything else). Atomic on its own: whatever interrupts
    the caller, either the whole statement committed or nothing did."""
    with autocommit_connection(engine) as conn:
        cursor = conn.cursor(row_factory=namedtuple_row)
        cursor.execute(statement, params)
        return cursor.fetchall()


def tenant_statement_sync(
    ctx: TenantContext, statement: str, params: Mapping[str, Any], engine: Engine | None = None
) -> list[Any]:
    """One statement in the tenant's context, in one round trip, and its rows (as named tuples).

    The tenant context and the statement are sent together in psycopg pipeline mode, on a connection
    in autocommit mode, and psycopg sends the one Sync when both are queued; PostgreSQL runs what
    came before a Sync as one implicit transaction, committed there, or rolled back if either failed.
    No BEGIN and COMMIT statements are needed, and none can be forgotten: the context is set with
    ``is_local``, so it ends with that transaction, and the statement is atomic on its own. Hence
    one statement and no block of the caller's: whatever interrupts this function (an error, a
    signal's exception, a lost connection), either the whole statement committed or nothing did. A
    unit of several writing statements sent this way could commit a prefix if interrupted between
    them; that is why this takes one. psycopg's own transaction would wait for the server three
    times (its BEGIN, the commit, the pipeline's end)."""
    with autocommit_connection(engine) as conn:
        cursor = conn.cursor(row_factory=namedtuple_row)
        with conn.pipeline():
            conn.execute(_SET_CONTEXT_PIPELINED, ctx.as_params())
            cursor.execute(statement, params)
        return cursor.fetchall()


@asynccontextmanager
async def system_transaction() -> AsyncIterator[AsyncConnection]:
    """A transaction with no tenant: sees catalog and non-tenant tables only (RLS hides tenant rows)."""
    async with async_engine().begin() as conn:
        yield conn
