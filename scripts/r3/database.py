"""What ingestion under fire asks of the database, always as the runtime identity (app_user).

Tenants are provisioned fresh for each run, so every count below is exact: nothing else writes
to them. Reads go through the same tenant context as the api (RLS decides what is visible).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Engine, create_engine, text

from app.core.db import tenant_transaction_sync
from app.core.tenancy import DEFAULT_CONTEXT_TTL_S, SET_SESSION_CONTEXT_ASYNCPG
from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.harness import sync_dsn


def runtime_engine(dsn: str) -> Engine:
    return create_engine(sync_dsn(dsn), hide_parameters=True, pool_size=2, max_overflow=2)


def provision_tenants(engine: Engine, count: int, run_tag: str) -> list[ProvisionedTenant]:
    tenants = []
    for number in range(count):
        with engine.begin() as conn:
            tenants.append(create_tenant(conn, f"r3-{run_tag}-{number}", user_id="r3"))
    return tenants


@dataclass(frozen=True)
class StoredCounts:
    events: int
    conversions: int
    dead_letters: int
    outbox_pending: int
    attributed_conversions: int


COUNTS_SQL = text(
    """
    SELECT (SELECT count(*) FROM attribution_events) AS events,
           (SELECT count(*) FROM attribution_events WHERE event_type = 'conversion') AS conversions,
           (SELECT count(*) FROM dead_letter_events) AS dead_letters,
           (SELECT count(*) FROM outbox WHERE completed_at IS NULL) AS outbox_pending,
           (SELECT coalesce(sum(conversions), 0) FROM attribution_results WHERE model = 'last_touch')
               AS attributed_conversions
    """
)
PII_SQL = text(
    """
    SELECT (SELECT count(*) FROM attribution_events
            WHERE payload::text LIKE ANY(:patterns) OR customer_key = ANY(:values))
         + (SELECT count(*) FROM dead_letter_events
            WHERE coalesce(scrubbed_payload::text, '') LIKE ANY(:patterns) OR detail::text LIKE ANY(:patterns))
    """
)


def stored_counts(engine: Engine, tenant: ProvisionedTenant) -> StoredCounts:
    with tenant_transaction_sync(tenant.context, engine) as conn:
        row = conn.execute(COUNTS_SQL).one()
    return StoredCounts(*(int(value) for value in row))


def raw_pii_rows(engine: Engine, tenants: list[ProvisionedTenant], values: list[str]) -> int:
    """Rows (events or dead letters) of these tenants that still hold any of the raw PII strings."""
    if not values:
        return 0
    patterns = [f"%{value}%" for value in values]
    found = 0
    for tenant in tenants:
        with tenant_transaction_sync(tenant.context, engine) as conn:
            found += int(conn.execute(PII_SQL, {"patterns": patterns, "values": values}).scalar_one())
    return found


def wait_attributed(engine: Engine, tenants: list[ProvisionedTenant], timeout_s: float) -> tuple[bool, float]:
    """Wait until every tenant's outbox is drained (attribution ran over every accepted event)."""
    started = time.monotonic()
    while True:
        pending = sum(stored_counts(engine, tenant).outbox_pending for tenant in tenants)
        elapsed = time.monotonic() - started
        if pending == 0 or elapsed > timeout_s:
            return pending == 0, round(elapsed, 3)
        time.sleep(0.25)


BASELINE_INSERT_SQL = """
INSERT INTO attribution_events (tenant_id, platform, external_event_id, webhook_id, event_type, customer_key,
                                channel, occurred_at, payload)
VALUES ($1, 'touchpoints', $2, $2, 'touchpoint', 'baseline', 'email', now(), $3::jsonb)
"""


async def _baseline(dsn: str, tenant: ProvisionedTenant, seconds: float, concurrency: int) -> dict[str, Any]:
    payload = '{"event_id": "baseline", "channel": "email", "campaign": "autumn-launch"}'
    counts = [0] * concurrency
    deadline = time.perf_counter() + seconds

    async def writer(slot: int) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            # the session keeps one tenant for the whole run: its token outlives the run
            await conn.execute(SET_SESSION_CONTEXT_ASYNCPG, tenant.context.token(seconds + DEFAULT_CONTEXT_TTL_S))
            while time.perf_counter() < deadline:
                await conn.execute(BASELINE_INSERT_SQL, tenant.tenant_id, f"base-{uuid.uuid4().hex}", payload)
                counts[slot] += 1
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(writer(slot) for slot in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "baseline_insert_tps": round(sum(counts) / elapsed, 1),
        "seconds": round(elapsed, 3),
        "clients": concurrency,
    }


def baseline_insert_tps(
    dsn: str, tenant: ProvisionedTenant, seconds: float = 5.0, concurrency: int = 8
) -> dict[str, Any]:
    """Plain single-row inserts (autocommit, no HTTP, no validation) into the same table, same identity:
    the ceiling our ingest path is compared with, measured in the same run on the same machine."""
    return asyncio.run(_baseline(sync_dsn(dsn), tenant, seconds, concurrency))
