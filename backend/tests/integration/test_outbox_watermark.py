"""An LLM call's cache watermark costs the same whatever other tenants wrote to the outbox.

Counted in buffers (pages read), not milliseconds: the same query plan reads the same pages on a
busy machine and an idle one.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from app.core.db import tenant_transaction_sync
from app.tenants.service import create_tenant

pytestmark = pytest.mark.integration

OTHER_TENANTS_ROWS = 30_000
FILL = text(
    "INSERT INTO outbox (tenant_id, kind, dispatched_at, completed_at) "
    "SELECT :t, 'attribution_recompute', now(), now() FROM generate_series(1, :n)"
)
BUDGET = text(
    "INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents) "
    "VALUES (:t, :u, date_trunc('month', now())::date, 1000)"
)
ADMIT = (
    "SELECT * FROM llm_admit('{request}', 'route', 2, 'cheap', 'mock', 'mock-small', 'sha', 'key-base', "
    "1, 1000, false, 30)"
)
OUTBOX_SCAN = "SELECT count(payload) FROM outbox"


def pages_read(conn: Connection, sql: str) -> int:
    [[plan]] = conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")).all()
    top: dict[str, Any] = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


def settled_pages_read(conn: Connection, sql: str) -> int:
    """Pages ``sql`` reads once planned: the first call plans (and reads the catalogs), then the
    lower of two, as a call that happens to plan again (autovacuum's statistics invalidate cached
    plans) also reads the catalogs, which says nothing about the statement."""
    pages_read(conn, sql)
    return min(pages_read(conn, sql) for _ in range(2))


def bind(sql: str, **values: object) -> str:
    """A ``text()``-style statement with its ``:name`` parameters written in as SQL literals, for
    EXPLAIN (values are the test's own: numbers and quoted ids)."""
    for name, value in values.items():
        sql = sql.replace(f":{name}", str(value))
    return sql


def test_the_watermark_does_not_scan_other_tenants_rows(runtime_engine: Engine, ops_engine: Engine) -> None:
    with runtime_engine.begin() as conn:
        busy = create_tenant(conn, f"busy-{uuid.uuid4().hex[:6]}")
        quiet = create_tenant(conn, f"quiet-{uuid.uuid4().hex[:6]}", user_id="probe")
    with tenant_transaction_sync(busy.context, runtime_engine) as conn:
        conn.execute(FILL, {"t": busy.tenant_id, "n": OTHER_TENANTS_ROWS})
    with tenant_transaction_sync(quiet.context, runtime_engine) as conn:
        conn.execute(BUDGET, {"t": quiet.tenant_id, "u": quiet.context.user_id})
        pages_read(conn, ADMIT.format(request="warm-up"))  # the first call also reads the catalogs to plan
        admit = pages_read(conn, ADMIT.format(request="measured"))
    with ops_engine.connect() as conn:
        # Control: this data set makes a scan visible. Reading the outbox's rows (as a role that
        # bypasses RLS, so nothing scopes it) costs this many pages.
        unscoped = pages_read(conn, OUTBOX_SCAN)
    assert unscoped > 150, f"the control should read the other tenant's rows ({unscoped} pages)"
    assert admit < unscoped / 2, f"llm_admit read {admit} pages; a scan of the outbox reads {unscoped}"
