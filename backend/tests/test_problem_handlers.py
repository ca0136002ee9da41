"""Only a lost or unreachable database is a 503 with Retry-After; any other OSError is a plain error.

The handler once took every OSError for a database outage, so a date conversion that overflowed
(``datetime.fromtimestamp`` raises OSError for some values) told clients to retry what would never
succeed. Connecting is where an OSError of any kind does mean "unreachable"; app.core.db turns those
into ConnectionError so the handler can stay narrow.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core import db
from app.core.problems import install_problem_handlers


def answer_to(exc: BaseException) -> httpx.Response:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/boom")

    return asyncio.run(get())


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        BrokenPipeError(errno.EPIPE, "Broken pipe"),
        TimeoutError(),
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        db.DatabaseUnreachableError("cannot reach the database (FileNotFoundError)"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_connection_failures_are_a_retryable_503(exc: OSError) -> None:
    response = answer_to(exc)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "database_unavailable"


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.EOVERFLOW, "Value too large for defined data type"),
        FileNotFoundError(errno.ENOENT, "No such file or directory"),
        PermissionError(errno.EACCES, "Permission denied"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_other_os_errors_are_not_a_database_outage(exc: OSError) -> None:
    response = answer_to(exc)
    assert response.status_code == 500
    assert "retry-after" not in response.headers
    assert "database_unavailable" not in response.text


def test_an_engine_that_cannot_connect_raises_connection_error(tmp_path: Path) -> None:
    """With the server stopped its unix socket file is gone: asyncpg raises FileNotFoundError."""
    engine = db.report_unreachable(create_async_engine(f"postgresql+asyncpg://u:p@/db?host={tmp_path}&port=5432"))

    async def connect() -> None:
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    with pytest.raises(ConnectionError) as raised:
        asyncio.run(connect())
    assert isinstance(raised.value.__cause__, FileNotFoundError)


def test_an_intake_call_that_cannot_connect_raises_connection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unreachable:
        def acquire(self) -> Unreachable:
            return self

        async def __aenter__(self) -> Unreachable:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")

        async def __aexit__(self, *_: object) -> None:
            return None

    async def pool() -> Unreachable:
        return Unreachable()

    monkeypatch.setattr(db, "call_pool", pool)
    monkeypatch.setattr(db, "get_settings", lambda: SimpleNamespace(db_call_timeout_s=1.0))
    with pytest.raises(ConnectionError) as raised:
        asyncio.run(db.call("SELECT 1"))
    assert isinstance(raised.value.__cause__, FileNotFoundError)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (asyncpg.TooManyConnectionsError, 503),  # 53300: the server out of connections
        (asyncpg.DiskFullError, 503),  # 53100
        (asyncpg.QueryCanceledError, 503),  # 57014: a statement stopped by statement_timeout
        (asyncpg.AdminShutdownError, 503),  # 57P01
        (asyncpg.InvalidTextRepresentationError, 422),  # 22P02: the caller's data
        (asyncpg.UniqueViolationError, 500),  # 23505: a bug of ours, not an outage to retry
    ],
    ids=lambda value: getattr(value, "sqlstate", str(value)),
)
def test_a_database_answer_is_classed_by_its_sqlstate(error: type[asyncpg.PostgresError], status: int) -> None:
    response = answer_to(error("from the server"))
    assert response.status_code == status
    assert ("retry-after" in response.headers) == (status == 503)
