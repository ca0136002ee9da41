"""The same-run HTTP peer of the intake: FastAPI + asyncpg, one INSERT per POST, nothing else.

    R3_PEER_DSN=... R3_PEER_TENANT=UUID python -m scripts.r3.http_peer --port N [--workers 1]

The sustained sweep drives it right after the intake, with the same generator, the same bodies
and headers, on the same PostgreSQL as the same runtime identity, behind uvicorn with the api's
settings (uvloop and httptools when installed, no access log, the same worker count and pool
size). It reads each body and stores one row per request into the same events table, under one
peer tenant set once per connection (a signed context token from the same key ring as the api's);
it records the body's size rather than its bytes, because the storm mix carries raw PII that must
never be stored. No signature, no schema, no dedup, no outbox: whatever the intake costs beyond
this is its own (``ratio_to_http_peer``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import uvicorn
from fastapi import FastAPI, Request, Response

from app.core.settings import Settings
from app.core.tenancy import SET_SESSION_CONTEXT_ASYNCPG, TenantContext
from scripts.harness import REPO_ROOT, sync_dsn

DSN_ENV, TENANT_ENV, POOL_ENV = "R3_PEER_DSN", "R3_PEER_TENANT", "R3_PEER_POOL_SIZE"
# A pooled connection keeps the tenant context it was opened with; the peer's whole sweep fits in this.
CONTEXT_TTL_S = 3600.0
DEFAULT_POOL_SIZE = int(Settings.model_fields["db_pool_size"].default)  # the api's own default
INSERT_SQL = """
INSERT INTO attribution_events (tenant_id, platform, external_event_id, webhook_id, event_type, customer_key,
                                channel, occurred_at, payload)
VALUES ($1, $2, $3, $3, 'touchpoint', 'http-peer', 'email', now(), jsonb_build_object('bytes', $4::int))
"""


def create_app() -> FastAPI:
    """The peer (a uvicorn factory: its settings come from the environment, like the api's)."""
    dsn, tenant = sync_dsn(os.environ[DSN_ENV]), uuid.UUID(os.environ[TENANT_ENV])
    pool_size = int(os.environ.get(POOL_ENV, DEFAULT_POOL_SIZE))
    pools: list[asyncpg.Pool] = []

    async def as_tenant(conn: asyncpg.Connection) -> None:
        await conn.execute(SET_SESSION_CONTEXT_ASYNCPG, TenantContext(tenant, "http-peer").token(CONTEXT_TTL_S))

    async def keep_tenant(_: asyncpg.Connection) -> None:
        """No reset query on release (asyncpg's RESET ALL would drop the tenant; the api skips it too)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pools.append(await asyncpg.create_pool(dsn, min_size=0, max_size=pool_size, init=as_tenant, reset=keep_tenant))
        try:
            yield
        finally:
            await pools[0].close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/webhooks/{platform}", status_code=202)
    async def insert(platform: str, request: Request) -> Response:
        body = await request.body()
        await pools[0].execute(INSERT_SQL, tenant, platform, f"peer-{uuid.uuid4().hex}", len(body))
        return Response(status_code=202)

    return app


def count_rows(dsn: str, tenant: uuid.UUID) -> int:
    """Rows the peer stored for its tenant (read as the same runtime identity)."""
    import asyncio

    async def count() -> int:
        conn = await asyncpg.connect(sync_dsn(dsn))
        try:
            await conn.execute(SET_SESSION_CONTEXT_ASYNCPG, TenantContext(tenant, "http-peer").token())
            return int(await conn.fetchval("SELECT count(*) FROM attribution_events WHERE tenant_id = $1", tenant))
        finally:
            await conn.close()

    return asyncio.run(count())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(dsn: str, tenant: uuid.UUID, workers: int = 1, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Start the peer in its own process group (the DSN by environment, never on the command line)."""
    port = _free_port()
    env = {**os.environ, DSN_ENV: dsn, TENANT_ENV: str(tenant)}
    argv = [sys.executable, "-m", "scripts.r3.http_peer", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the HTTP peer exited with {proc.returncode} before listening")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP peer did not listen within {start_timeout_s:g} s")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (the api's count)")
    args = parser.parse_args(argv)
    if DSN_ENV not in os.environ or TENANT_ENV not in os.environ:
        print(f"set {DSN_ENV} (app_user DSN) and {TENANT_ENV} (the peer tenant's id)", file=sys.stderr)
        return 2
    uvicorn.run(
        "scripts.r3.http_peer:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
