"""A no-op HTTP/1.1 server: the null endpoint that measures the load harness's own floor.

    python -m scripts.r3.null_server --port 0   # prints {"port": N} once listening

Answers every request with ``204 No Content`` (keep-alive), optionally after a fixed delay, and
does nothing else; whatever latency the generator reports against it is the harness's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator

from scripts.harness import REPO_ROOT
from scripts.r3.openloop import Shot

RESPONSE = b"HTTP/1.1 204 No Content\r\nServer: null\r\nContent-Length: 0\r\n\r\n"


def null_shot(_: int) -> Shot:
    """What the generator sends to the null server: nothing to build, nothing to judge."""
    return Shot("GET", "/null", "null")


class NullProtocol(asyncio.Protocol):
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buffer) < end + 4 + length:
                return  # the body is still arriving
            self.buffer = self.buffer[end + 4 + length :]
            self._answer()

    def _answer(self) -> None:
        assert self.transport is not None
        if self.delay_s > 0:
            asyncio.get_running_loop().call_later(self.delay_s, self._write)
        else:
            self.transport.write(RESPONSE)

    def _write(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(RESPONSE)


async def serve(port: int, delay_s: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: NullProtocol(delay_s), "127.0.0.1", port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": bound}), flush=True)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def running(delay_ms: float = 0.0) -> Iterator[str]:
    """Start the null server in its own process (so it does not share the generator's core); yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.r3.null_server", "--port", "0", "--delay-ms", str(delay_ms)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"null server exited with {proc.wait()} before listening")
        yield f"http://127.0.0.1:{json.loads(line)['port']}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed as JSON)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fixed service time before each answer")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.delay_ms / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
