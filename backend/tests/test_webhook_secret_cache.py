"""The webhook-secret cache's rules, on its own (app.webhooks.secret_cache): it answers only while it
listens, forgets a tenant when told, keeps nothing fetched across a change, lets a secret end on time,
keeps no empty or unbounded entries, and its listener turns it off when the connection fails or hangs.
The live path (trigger, NOTIFY, api) is in integration/test_webhook_secret_cache_live.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

import pytest

from app.webhooks import secret_cache
from app.webhooks.secret_cache import Listener, SecretCache, TimedSecret, timed

TENANT = uuid.uuid4()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Database:
    """What the fetch would read, and how many times it was asked."""

    def __init__(self, *secrets: TimedSecret) -> None:
        self.secrets = list(secrets)
        self.fetches = 0
        self.during_fetch: Callable[[], None] = lambda: None

    async def fetch(self) -> Sequence[TimedSecret]:
        self.fetches += 1
        self.during_fetch()
        return list(self.secrets)


def listening_cache(clock: Clock | None = None, max_age_s: float = 60) -> SecretCache:
    cache = SecretCache(max_age_s, clock or Clock())
    cache.start_listening()
    return cache


def ask(cache: SecretCache, db: Database, tenant: uuid.UUID = TENANT) -> list[str]:
    return asyncio.run(cache.secrets(tenant, db.fetch))


def test_a_listening_cache_answers_from_memory() -> None:
    cache, db = listening_cache(), Database(TimedSecret("s1", None))
    assert [ask(cache, db) for _ in range(3)] == [["s1"]] * 3
    assert db.fetches == 1


def test_control_a_cache_that_does_not_listen_fetches_every_time() -> None:
    cache, db = SecretCache(60, Clock()), Database(TimedSecret("s1", None))
    for _ in range(3):
        ask(cache, db)
    assert db.fetches == 3 and len(cache) == 0


def test_a_notification_drops_its_tenant_only() -> None:
    cache, db = listening_cache(), Database(TimedSecret("s1", None))
    other = uuid.uuid4()
    ask(cache, db), ask(cache, db, other)
    db.secrets = [TimedSecret("s2", None)]
    cache.changed(str(TENANT))
    assert ask(cache, db) == ["s2"]
    assert ask(cache, db, other) == ["s1"]  # still cached: nothing said it changed


@pytest.mark.parametrize("payload", ["*", "not-a-tenant", ""])
def test_a_notification_naming_no_tenant_drops_every_entry(payload: str) -> None:
    cache, db = listening_cache(), Database(TimedSecret("s1", None))
    ask(cache, db), ask(cache, db, uuid.uuid4())
    cache.changed(payload)
    assert len(cache) == 0


def test_a_fetch_that_raced_a_change_is_used_once_and_not_kept() -> None:
    cache, db = listening_cache(), Database(TimedSecret("old", None))
    db.during_fetch = lambda: cache.changed(str(TENANT))  # the change commits while the fetch reads
    assert ask(cache, db) == ["old"]
    db.during_fetch = lambda: None
    db.secrets = [TimedSecret("new", None)]
    assert ask(cache, db) == ["new"]
    assert db.fetches == 2


def test_a_cached_secret_ends_on_time() -> None:
    clock = Clock()
    cache, db = listening_cache(clock), Database(TimedSecret("old", clock.now + 2), TimedSecret("new", None))
    assert ask(cache, db) == ["old", "new"]
    clock.now += 1.999
    assert ask(cache, db) == ["old", "new"]
    clock.now += 0.002
    assert ask(cache, db) == ["new"]
    assert db.fetches == 1  # it ended in memory, not by a fetch


def test_an_entry_is_fetched_again_when_too_old() -> None:
    clock = Clock()
    cache, db = listening_cache(clock, max_age_s=5), Database(TimedSecret("s1", None))
    ask(cache, db)
    clock.now += 4.9
    ask(cache, db)
    clock.now += 0.1
    ask(cache, db)
    assert db.fetches == 2


def test_max_age_zero_turns_the_cache_off() -> None:
    cache, db = listening_cache(max_age_s=0), Database(TimedSecret("s1", None))
    ask(cache, db), ask(cache, db)
    assert db.fetches == 2 and len(cache) == 0


def test_a_tenant_without_secrets_is_not_kept_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secret_cache, "MAX_TENANTS", 3)
    cache = listening_cache()
    assert ask(cache, Database()) == [] and len(cache) == 0
    tenants = [uuid.uuid4() for _ in range(5)]
    for tenant in tenants:
        ask(cache, Database(TimedSecret("s", None)), tenant)
    assert len(cache) == 3
    db = Database(TimedSecret("s", None))
    ask(cache, db, tenants[0])  # the oldest went first
    ask(cache, db, tenants[-1])
    assert db.fetches == 1


def test_losing_the_connection_empties_the_cache_and_stops_it_answering() -> None:
    cache, db = listening_cache(), Database(TimedSecret("s1", None))
    ask(cache, db)
    cache.stop_listening()
    assert len(cache) == 0
    ask(cache, db), ask(cache, db)
    assert db.fetches == 3


def test_rows_become_timed_secrets_and_ones_that_do_not_open_are_absent() -> None:
    opened = {"sealed-a": "a", "sealed-b": "b"}.get
    found = timed([("sealed-a", None), ("sealed-b", 2.5), ("sealed-x", 10.0)], opened, fetched_at=100.0)
    assert found == [TimedSecret("a", None), TimedSecret("b", 102.5)]


class FakeConnection:
    """Stands in for the LISTEN connection (the live one is tested in integration): ``heartbeat``
    answers each NOTIFY, and the echo is delivered only when ``echoes``."""

    def __init__(self, heartbeat: Callable[[], Awaitable[int]], echoes: bool = True) -> None:
        self.heartbeat = heartbeat
        self.echoes = echoes
        self.closed = False
        self.listeners: dict[str, Callable[..., object]] = {}

    def add_termination_listener(self, _callback: object) -> None: ...

    async def add_listener(self, channel: str, callback: Callable[..., object]) -> None:
        self.listeners[channel] = callback

    def is_closed(self) -> bool:
        return self.closed

    async def execute(self, sql: str) -> str:
        await self.heartbeat()
        channel = sql.removeprefix("NOTIFY ")
        if self.echoes and channel in self.listeners:
            self.listeners[channel](self, 1, channel, "")
        return "NOTIFY"

    def terminate(self) -> None:
        self.closed = True


def test_a_connection_that_answers_but_delivers_no_notification_never_turns_the_cache_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pooler in transaction mode: every query answered, no notification ever delivered."""
    monkeypatch.setattr(secret_cache, "HEARTBEAT_S", 0.01)
    monkeypatch.setattr(secret_cache, "HEARTBEAT_TIMEOUT_S", 0.02)
    monkeypatch.setattr(secret_cache, "RECONNECT_S", 0.01)

    async def answer() -> int:
        return 1

    async def scenario() -> list[bool]:
        cache = SecretCache(60, Clock())

        async def connect() -> FakeConnection:
            return FakeConnection(answer, echoes=False)

        task = asyncio.create_task(Listener(cache, connect).run())  # type: ignore[arg-type]
        seen = []
        for _ in range(20):
            await asyncio.sleep(0.01)
            seen.append(cache.listening)
        task.cancel()
        return seen

    assert not any(asyncio.run(scenario()))


@pytest.mark.parametrize("heartbeat", ["hangs", "fails"])
def test_a_listener_whose_connection_hangs_or_fails_turns_the_cache_off(
    monkeypatch: pytest.MonkeyPatch, heartbeat: str
) -> None:
    monkeypatch.setattr(secret_cache, "HEARTBEAT_S", 0.01)
    monkeypatch.setattr(secret_cache, "HEARTBEAT_TIMEOUT_S", 0.05)
    monkeypatch.setattr(secret_cache, "RECONNECT_S", 3600)  # once off, it stays off for this test
    answered = []

    async def answer() -> int:
        if not answered:  # the first heartbeat, before the cache may answer, goes through
            answered.append(1)
            return 1
        if heartbeat == "hangs":
            await asyncio.sleep(3600)
        raise ConnectionResetError("gone")

    async def scenario() -> tuple[bool, bool, FakeConnection]:
        cache = SecretCache(60, Clock())
        conn = FakeConnection(answer)

        async def connect() -> FakeConnection:
            return conn

        task = asyncio.create_task(Listener(cache, connect).run())  # type: ignore[arg-type]
        await asyncio.sleep(0.005)
        listened = cache.listening
        await asyncio.sleep(0.2)
        task.cancel()
        return listened, cache.listening, conn

    listened, still_listening, conn = asyncio.run(scenario())
    assert listened and set(conn.listeners) == {secret_cache.CHANNEL, secret_cache.HEARTBEAT_CHANNEL}
    assert not still_listening and conn.closed


def test_control_a_listener_whose_heartbeat_answers_keeps_the_cache_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secret_cache, "HEARTBEAT_S", 0.01)

    async def answer() -> int:
        return 1

    async def scenario() -> bool:
        cache = SecretCache(60, Clock())

        async def connect() -> FakeConnection:
            return FakeConnection(answer)

        task = asyncio.create_task(Listener(cache, connect).run())  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        task.cancel()
        return cache.listening

    assert asyncio.run(scenario())


def test_the_listener_recovers_from_any_failure_and_says_so_once_per_outage(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(secret_cache, "RECONNECT_S", 0.01)
    monkeypatch.setattr(secret_cache, "HEARTBEAT_S", 0.01)
    failures: list[BaseException] = [OSError("refused"), OSError("refused"), OSError("refused"), ValueError("bug")]

    async def answer() -> int:
        return 1

    async def scenario() -> bool:
        cache = SecretCache(60, Clock())

        async def connect() -> FakeConnection:
            if failures:
                raise failures.pop(0)
            return FakeConnection(answer)

        task = asyncio.create_task(Listener(cache, connect).run())  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        task.cancel()
        return cache.listening

    with caplog.at_level("WARNING", logger=secret_cache.__name__):
        assert asyncio.run(scenario())
    messages = [record.getMessage() for record in caplog.records]
    assert sum("until its LISTEN connection is back" in m for m in messages) == 1  # three failures, one outage
    assert sum("failed unexpectedly" in m for m in messages) == 1
