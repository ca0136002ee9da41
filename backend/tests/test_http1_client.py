"""The load engine's HTTP/1.1 client: response framing, connection reuse and its pool's limit,
against a real socket server that answers in the shapes a server may choose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from scripts.r3 import http1

ANSWERS = {
    b"/length": b"HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\n\r\nhello",
    b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"/close": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    b"/garbage": b"SMTP ready\r\n\r\n",
}


@asynccontextmanager
async def server(delay_s: float = 0.0) -> AsyncIterator[tuple[str, list[int]]]:
    """Answers each request by its path; yields the base URL and a list that counts connections."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                path = head.split(b" ", 2)[1]
                length = next(
                    (int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
                )
                await reader.readexactly(length)
                await asyncio.sleep(delay_s)
                writer.write(ANSWERS[path])
                await writer.drain()
                if path == b"/close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        listener.close()


def request(pool: http1.ConnectionPool, path: str) -> bytes:
    return http1.build_request(pool.origin, "POST", path, {"x-test": "1"}, b"{}")


def test_content_length_chunked_and_close_are_read_and_kept_alive_only_when_allowed() -> None:
    async def scenario() -> tuple[list[int], int]:
        async with server() as (url, connections):
            pool = http1.ConnectionPool(http1.Origin.parse(url), limit=4)
            statuses = [(await http1.send(pool, request(pool, path)))[0] for path in ("/length", "/chunked", "/length")]
            statuses.append((await http1.send(pool, request(pool, "/close")))[0])
            statuses.append((await http1.send(pool, request(pool, "/length")))[0])
            pool.close()
            return statuses, len(connections)

    statuses, opened = asyncio.run(scenario())
    assert statuses == [202, 200, 202, 503, 202]
    assert opened == 2, "one connection reused until the server asked to close it, then a new one"


def test_a_response_that_is_not_http_is_an_error_not_a_status() -> None:
    async def scenario() -> None:
        async with server() as (url, _):
            pool = http1.ConnectionPool(http1.Origin.parse(url), limit=1)
            await http1.send(pool, request(pool, "/garbage"))

    with pytest.raises(http1.ProtocolError):
        asyncio.run(scenario())


def test_the_pool_never_opens_more_than_its_limit() -> None:
    async def scenario() -> tuple[list[int], int]:
        async with server(delay_s=0.02) as (url, connections):
            pool = http1.ConnectionPool(http1.Origin.parse(url), limit=3)
            answers = await asyncio.gather(*(http1.send(pool, request(pool, "/length")) for _ in range(12)))
            pool.close()
            return [status for status, _ in answers], len(connections)

    statuses, opened = asyncio.run(scenario())
    assert statuses == [202] * 12
    assert opened == 3


def test_only_plain_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="plain http"):
        http1.Origin.parse("https://example.test")
    assert http1.Origin.parse("http://127.0.0.1:8080") == http1.Origin("127.0.0.1", 8080)


def test_a_connection_idle_past_the_limit_is_replaced_not_reused() -> None:
    """A server drops idle connections after its keep-alive timeout; reusing one that idled that
    long risks writing a request into a connection whose close is already on the way."""

    async def opened_after_a_pause(max_idle_s: float) -> int:
        async with server() as (url, connections):
            pool = http1.ConnectionPool(http1.Origin.parse(url), limit=2, max_idle_s=max_idle_s)
            await http1.send(pool, request(pool, "/length"))
            await asyncio.sleep(0.1)
            await http1.send(pool, request(pool, "/length"))
            pool.close()
            return len(connections)

    assert asyncio.run(opened_after_a_pause(max_idle_s=0.05)) == 2
    assert asyncio.run(opened_after_a_pause(max_idle_s=5.0)) == 1  # control: inside the limit, reused
