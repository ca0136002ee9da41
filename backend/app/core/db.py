"""Database engines and the unit-of-work helpers every api route and worker task uses.

The api is async (asyncpg); the worker and operator probes are sync (psycopg). Both open a
transaction, set the tenant context with the same statement, and commit or roll back as one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.core.settings import get_settings
from app.core.tenancy import SET_CONTEXT_SQL, TenantContext


@lru_cache(maxsize=1)
def async_engine() -> AsyncEngine:
    settings = get_settings()
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        hide_parameters=True,  # bound values (keys, payloads) never reach an error message or a log
    )


@lru_cache(maxsize=1)
def sync_engine() -> Engine:
    settings = get_settings()
    return create_engine(
        settings.sync_database_url, pool_size=5, max_overflow=5, pool_pre_ping=True, hide_parameters=True
    )


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


@asynccontextmanager
async def system_transaction() -> AsyncIterator[AsyncConnection]:
    """A transaction with no tenant: sees catalog and non-tenant tables only (RLS hides tenant rows)."""
    async with async_engine().begin() as conn:
        yield conn
