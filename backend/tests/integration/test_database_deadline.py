"""The api never waits on the database past DB_CALL_TIMEOUT_S: a statement (or a connection) that
does not answer in time raises TimeoutError, which the problem handlers answer with 503 and
Retry-After. A partition between api and PostgreSQL is the real case (nox -s faults, netns mode);
a statement that sleeps past the deadline is the same wait, here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from app.core import db
from app.core.settings import get_settings
from app.webhooks import intake
from scripts.topology import Topology
from scripts.topology.postgres import endpoint_of

from .conftest import TwoTenants
from .webhook_client import signed_headers


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


class CutCable:
    """TCP in front of the topology's PostgreSQL socket that can be cut like a cable: after ``cut``,
    bytes on the way are dropped and new connections are accepted but never answered, and nothing
    is closed, as across a partition where the far side's packets vanish."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.is_cut = False
        self._held: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        if self.is_cut:
            self._held.append(client_out)  # a connect that reaches nobody
            return
        server_in, server_out = await asyncio.open_unix_connection(self.socket_path)
        self._held += [client_out, server_out]
        await asyncio.gather(self._pump(client_in, server_out), self._pump(server_in, client_out))

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            if not self.is_cut:
                sink.write(data)
                await sink.drain()

    def close(self) -> None:
        for writer in self._held:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()


@pytest.fixture
def through_a_cable(topology: Topology, monkeypatch: pytest.MonkeyPatch) -> Iterator[CutCable]:
    """The runtime settings with DATABASE_URL pointing at a CutCable, DB_CALL_TIMEOUT_S 1 s."""
    endpoint = endpoint_of(topology.runtime_env["DATABASE_URL"])
    cable = CutCable(f"{endpoint.host}/.s.PGSQL.{endpoint.port}")
    for key, value in topology.runtime_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DB_CALL_TIMEOUT_S", str(CABLE_DEADLINE_S))
    get_settings.cache_clear()
    yield cable
    get_settings.cache_clear()


CABLE_DEADLINE_S = 1.0


async def cut_mid_statement(
    cable: CutCable,
    monkeypatch: pytest.MonkeyPatch,
    statement: Callable[[], Awaitable[object]],
    cut: Callable[[CutCable], None] = lambda cable: setattr(cable, "is_cut", True),
) -> float:
    """Seconds ``statement`` takes once ``cut`` (at once, by default) has degraded the cable, on a
    pooled connection made before."""
    port = await cable.start()
    url = make_url(get_settings().database_url).set(host="127.0.0.1", port=port, query={})
    monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        await db.call("SELECT 1")  # the pool holds a live connection through the cable
        cut(cable)
        started = time.monotonic()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await statement()
        return time.monotonic() - started
    finally:
        cable.close()
        for pool in db._call_pools.values():
            pool.terminate()
        db._call_pools.clear()


@pytest.mark.timing
def test_a_cut_connection_answers_within_the_deadline(
    through_a_cable: CutCable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partition case (nox -s faults, partition_api_postgres) without namespaces: db.call gives
    up at its deadline, not after asyncpg's cancel request has also timed out."""
    elapsed = asyncio.run(cut_mid_statement(through_a_cable, monkeypatch, lambda: db.call("SELECT 1")))
    assert elapsed < CABLE_DEADLINE_S * 1.4


@pytest.mark.timing
def test_control_releasing_a_cut_connection_waits_for_the_cancel_request(
    through_a_cable: CutCable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: the same cut, releasing the connection to the pool as asyncpg does by default (what
    db.call did before it abandoned cut-off connections), takes about twice the deadline: the cable
    reproduces the hazard, so the test above would catch its return."""

    async def released_the_default_way() -> None:
        async with asyncio.timeout(CABLE_DEADLINE_S):
            pool = await db.call_pool()
            async with pool.acquire() as conn:
                await conn.fetch("SELECT 1")

    elapsed = asyncio.run(cut_mid_statement(through_a_cable, monkeypatch, released_the_default_way))
    assert elapsed > CABLE_DEADLINE_S * 1.8


def late_then_cut(cable: CutCable) -> Callable[..., Awaitable[list[Any]]]:
    """db.call as seen across a link that is slow and then cut: the first call answers late (a
    while after it was made, inside its deadline), and the cable is cut as it answers."""
    calls = 0

    async def call(sql: str, *args: object) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(CABLE_DEADLINE_S * 0.7)
        rows = await db.call(sql, *args)
        cable.is_cut = True
        return rows

    return call


@pytest.mark.timing
def test_a_webhook_answers_within_one_deadline_across_its_calls(
    through_a_cable: CutCable, monkeypatch: pytest.MonkeyPatch, two_tenants: TwoTenants
) -> None:
    """The intake makes two calls (the tenant's secrets, then the event). A link that is slow and
    then cut gives each call most of a deadline; the sender still hears within one."""
    monkeypatch.setattr(intake, "call", late_then_cut(through_a_cable))
    body = json.dumps({"event_id": f"evt-{uuid.uuid4().hex[:10]}", "customer_id": "c", "channel": "search"}).encode()
    request = intake.WebhookRequest("touchpoints", signed_headers(two_tenants.a, body), body)
    elapsed = asyncio.run(
        cut_mid_statement(through_a_cable, monkeypatch, lambda: intake.ingest(request, get_settings()), no_cut)
    )
    assert elapsed < CABLE_DEADLINE_S * 1.4


@pytest.mark.timing
def test_control_two_calls_across_that_link_take_their_two_deadlines(
    through_a_cable: CutCable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: the same link under two calls that share no deadline takes about 1.7 deadlines, so
    the test above measures the intake's shared deadline and would catch its loss."""
    call = late_then_cut(through_a_cable)

    async def two_calls() -> None:
        await call("SELECT 1")
        await call("SELECT 1")

    elapsed = asyncio.run(cut_mid_statement(through_a_cable, monkeypatch, two_calls, no_cut))
    assert elapsed > CABLE_DEADLINE_S * 1.5


def no_cut(_cable: CutCable) -> None:
    """The link is cut by the calls themselves (late_then_cut)."""
