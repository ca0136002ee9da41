"""The api never waits on the database past DB_CALL_TIMEOUT_S: a statement (or a connection) that
does not answer in time raises TimeoutError, which the problem handlers answer with 503 and
Retry-After. A partition between api and PostgreSQL is the real case (nox -s faults, netns mode);
a statement that sleeps past the deadline is the same wait, here."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.core import db
from app.core.settings import get_settings
from scripts.topology import Topology


@pytest.fixture
def short_deadline(topology: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in topology.runtime_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DB_CALL_TIMEOUT_S", "0.5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def timed(sql: str) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        await db.call(sql)
        caught: BaseException | None = None
    except (TimeoutError, ConnectionError) as exc:
        caught = exc
    finally:
        await db.close_call_pools()
    return caught, time.monotonic() - started


@pytest.mark.usefixtures("short_deadline")
def test_a_statement_past_the_deadline_is_cut_off() -> None:
    caught, elapsed = asyncio.run(timed("SELECT pg_sleep(5)"))
    assert isinstance(caught, TimeoutError | ConnectionError)
    assert elapsed < 3.0


@pytest.mark.usefixtures("short_deadline")
def test_control_a_statement_inside_the_deadline_answers() -> None:
    caught, elapsed = asyncio.run(timed("SELECT pg_sleep(0.1)"))
    assert caught is None
    assert elapsed < 3.0
