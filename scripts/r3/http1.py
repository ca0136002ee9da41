"""A small keep-alive HTTP/1.1 client for the load engine: one request at a time per connection,
a bounded pool of connections, and nothing else.

The generator shares two cores with what it measures, so every microsecond it spends is taken from
the server under test. A general client (aiohttp) spent about 0.45 ms of CPU per request here;
this one writes pre-built request bytes and parses only the status line and the body framing
(Content-Length or chunked). It is checked against k6 on the null endpoint (``k6_crosscheck``).
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 this client can read."""


class ServerDisconnectedError(ConnectionError):
    """The connection closed before a whole response arrived."""


@dataclass(frozen=True)
class Origin:
    host: str
    port: int

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the load engine speaks plain http to a host: {base_url!r}")
        return cls(parts.hostname, parts.port or 80)


def build_request(origin: Origin, method: str, path: str, headers: dict[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {origin.host}:{origin.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class _ResponseParser:
    """Feeds on bytes; ``done`` once one whole response (status, headers, body) has arrived."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.status: int | None = None
        self.keep_alive = True
        self._body_start = -1
        self._length: int | None = None  # None: chunked
        self.done = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if self._body_start < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._read_head(bytes(self.buffer[:end]))
            self._body_start = end + 4
        if self._length is not None:
            self.done = len(self.buffer) - self._body_start >= self._length
        else:
            self.done = self._chunks_complete()

    def _read_head(self, head: bytes) -> None:
        status_line, *header_lines = head.split(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {status_line[:60]!r}")
        self.status = int(parts[1])
        length, chunked = None, False
        for line in header_lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                self.keep_alive = b"close" not in value.lower()
        if chunked:
            self._length = None
        elif length is not None:
            self._length = length
        elif self.status in (204, 304) or 100 <= self.status < 200:
            self._length = 0
        else:
            raise ProtocolError("a response without Content-Length or chunked framing")

    def _chunks_complete(self) -> bool:
        at = self._body_start
        while True:
            line_end = self.buffer.find(b"\r\n", at)
            if line_end < 0:
                return False
            size = int(bytes(self.buffer[at:line_end]).split(b";", 1)[0], 16)
            at = line_end + 2
            if size == 0:  # the last chunk: then optional trailers, then an empty line
                return self.buffer[at : at + 2] == b"\r\n" or self.buffer.find(b"\r\n\r\n", at) >= 0
            at += size + 2
            if at > len(self.buffer):
                return False


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser: _ResponseParser | None = None
        self._waiter: asyncio.Future[_ResponseParser] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        if self._parser is None or self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: this connection is out of step
            return
        try:
            self._parser.feed(data)
        except (ProtocolError, ValueError) as exc:
            self._waiter.set_exception(ProtocolError(str(exc)))
            self.close()
            return
        if self._parser.done:
            self._waiter.set_result(self._parser)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ServerDisconnectedError("server closed the connection mid-response"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes) -> _ResponseParser:
        assert self.transport is not None
        self._parser = _ResponseParser()
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            return await self._waiter
        finally:
            self._parser, self._waiter = None, None


MAX_IDLE_S = 2.0  # well inside common server keep-alive timeouts (uvicorn's: 5 s)


class ConnectionPool:
    """At most ``limit`` connections to one origin; a request waits for a free one beyond that.

    A connection idle for ``max_idle_s`` is closed rather than reused: a server closes idle
    connections after its keep-alive timeout, and a request written just as its close is on the
    way is lost with the connection (a transport error that says nothing about the server).
    """

    def __init__(self, origin: Origin, limit: int, max_idle_s: float = MAX_IDLE_S) -> None:
        self.origin = origin
        self.limit = limit
        self.max_idle_s = max_idle_s
        self._idle: collections.deque[tuple[_Connection, float]] = collections.deque()
        self._open = 0
        self._waiting: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()

    async def acquire(self) -> _Connection:
        while self._idle:
            connection, idle_since = self._idle.pop()
            if not connection.closed and time.perf_counter() - idle_since < self.max_idle_s:
                return connection
            connection.close()
            self._open -= 1
        if self._open >= self.limit:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed over just as the caller gave up
                    handed = waiter.result()
                    if handed is not None:
                        self.release(handed, reusable=True)
                    else:
                        self._wake_one(None)  # pass the right to open a connection on
                raise
            if handed is not None:
                return handed
        self._open += 1
        try:
            _, connection = await asyncio.get_running_loop().create_connection(
                _Connection, self.origin.host, self.origin.port
            )
        except BaseException:
            self._open -= 1
            self._wake_one(None)
            raise
        return connection

    def release(self, connection: _Connection, reusable: bool) -> None:
        if not reusable or connection.closed:
            connection.close()
            self._open -= 1
            self._wake_one(None)  # a waiter may open a new connection in its place
        elif not self._wake_one(connection):
            self._idle.append((connection, time.perf_counter()))

    def _wake_one(self, connection: _Connection | None) -> bool:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[0].close()


async def send(pool: ConnectionPool, request: bytes) -> tuple[int, float]:
    """One request on a pooled connection: its status, and when (``time.perf_counter``) it had
    its connection. A response that asks to close, or an error, retires the connection."""
    connection = await pool.acquire()
    connected = time.perf_counter()
    reusable = False
    try:
        response = await connection.exchange(request)
        reusable = response.keep_alive
        assert response.status is not None
        return response.status, connected
    finally:
        pool.release(connection, reusable)
