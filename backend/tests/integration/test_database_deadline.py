"""The api never waits on the database past DB_CALL_TIMEOUT_S: a statement (or a connection) that
does not answer in time raises TimeoutError, which the problem handlers answer with 503 and
Retry-After. A partition between api and PostgreSQL is the real case (nox -s faults, netns mode);
a statement that sleeps past the deadline is the same wait, here."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
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


@dataclass
class CutRun:
    elapsed_s: float  # from the cut to the statement's end
    raised: BaseException | None  # what the statement raised
    answers_after_heal: bool  # a call made once the cable is whole again succeeded
    pool_size_after_heal: int


async def cut_mid_statement(
    cable: CutCable,
    monkeypatch: pytest.MonkeyPatch,
    statement: Callable[[], Awaitable[object]],
    cut: Callable[[CutCable], None] = lambda cable: setattr(cable, "is_cut", True),
) -> CutRun:
    """``statement`` once ``cut`` (at once, by default) has degraded the cable, on a pooled connection
    made before; then the cable is made whole and the pool must serve again."""
    port = await cable.start()
    url = make_url(get_settings().database_url).set(host="127.0.0.1", port=port, query={})
    monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        await db.call("SELECT 1")  # the pool holds a live connection through the cable
        cut(cable)
        started = time.monotonic()
        raised: BaseException | None = None
        try:
            await statement()
        except (TimeoutError, ConnectionError) as exc:
            raised = exc
        elapsed = time.monotonic() - started
        cable.is_cut = False
        healed = [tuple(row) for row in await db.call("SELECT 1")] == [(1,)]
        return CutRun(elapsed, raised, healed, (await db.call_pool()).get_size())
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
    up at its deadline, not after asyncpg's cancel request has also timed out; the abandoned
    connection's slot serves again once the link is back."""
    run = asyncio.run(cut_mid_statement(through_a_cable, monkeypatch, lambda: db.call("SELECT 1")))
    assert isinstance(run.raised, TimeoutError | ConnectionError)
    assert run.elapsed_s < CABLE_DEADLINE_S * 1.4
    assert run.answers_after_heal and run.pool_size_after_heal <= get_settings().db_pool_size


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

    run = asyncio.run(cut_mid_statement(through_a_cable, monkeypatch, released_the_default_way))
    assert isinstance(run.raised, TimeoutError | ConnectionError)
    assert run.elapsed_s > CABLE_DEADLINE_S * 1.8


class LateThenCut:
    """db.call as seen across a link that is slow and then cut: the first call answers late (a
    while after it was made, inside its deadline), and the cable is cut as it answers."""

    def __init__(self, cable: CutCable) -> None:
        self.cable = cable
        self.calls = 0

    async def __call__(self, sql: str, *args: object) -> list[Any]:
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(CABLE_DEADLINE_S * 0.7)
        rows = await db.call(sql, *args)
        self.cable.is_cut = True
        return rows


@pytest.mark.timing
def test_a_webhook_answers_within_one_deadline_across_its_calls(
    through_a_cable: CutCable, monkeypatch: pytest.MonkeyPatch, two_tenants: TwoTenants
) -> None:
    """The intake makes two calls (the tenant's secrets, then the event). A link that is slow and
    then cut gives each call most of a deadline; the sender still hears within one."""
    call = LateThenCut(through_a_cable)
    monkeypatch.setattr(intake, "call", call)
    body = json.dumps({"event_id": f"evt-{uuid.uuid4().hex[:10]}", "customer_id": "c", "channel": "search"}).encode()
    request = intake.WebhookRequest("touchpoints", signed_headers(two_tenants.a, body), body)
    run = asyncio.run(
        cut_mid_statement(through_a_cable, monkeypatch, lambda: intake.ingest(request, get_settings()), no_cut)
    )
    assert call.calls == 2, "the secrets were read and the event's call was made"
    assert isinstance(run.raised, TimeoutError | ConnectionError)
    assert run.elapsed_s < CABLE_DEADLINE_S * 1.4


@pytest.mark.timing
def test_control_two_calls_across_that_link_take_their_two_deadlines(
    through_a_cable: CutCable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: the same link under two calls that share no deadline takes about 1.7 deadlines, so
    the test above measures the intake's shared deadline and would catch its loss."""
    call = LateThenCut(through_a_cable)

    async def two_calls() -> None:
        await call("SELECT 1")
        await call("SELECT 1")

    run = asyncio.run(cut_mid_statement(through_a_cable, monkeypatch, two_calls, no_cut))
    assert call.calls == 2 and isinstance(run.raised, TimeoutError | ConnectionError)
    assert run.elapsed_s > CABLE_DEADLINE_S * 1.5


def no_cut(_cable: CutCable) -> None:
    """The link is cut by the calls themselves (LateThenCut)."""


@pytest.mark.usefixtures("short_deadline")
def test_the_server_stops_a_call_statement_a_second_after_the_api_gave_up() -> None:
    """A statement the api abandoned at its deadline does not run on: every call connection carries
    a statement_timeout of the deadline plus a second (0.5 s here)."""

    async def setting() -> str:
        try:
            [row] = await db.call("SELECT current_setting('statement_timeout')")
            return str(row[0])
        finally:
            await db.close_call_pools()

    assert asyncio.run(setting()) == "1500ms"
