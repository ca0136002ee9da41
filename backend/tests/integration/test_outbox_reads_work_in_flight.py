"""The relay's "which tenants are busy?" and a recompute's completion read the work in flight,
whatever the outbox's history: partial indexes on the unfinished and the recently sent recompute
rows (migration 0016). Counted in pages read, not milliseconds (see test_outbox_watermark). The
rest of the claim, the pending rows, is left out: the running relay dispatches them meanwhile.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

from app.attribution.last_touch import COMPLETE_OUTBOX_SQL
from app.core.db import tenant_transaction_sync
from app.core.roles import SYSTEM_ROLE
from app.tenants.service import create_tenant
from scripts.harness import REPO_ROOT

from .test_outbox_watermark import bind, settled_pages_read

pytestmark = pytest.mark.integration

HISTORY = 30_000
FILL_HISTORY = text(
    "INSERT INTO outbox (tenant_id, kind, dispatched_at, completed_at) "
    "SELECT :t, 'attribution_recompute', now() - interval '1 hour', now() - interval '1 hour' "
    "FROM generate_series(1, :n)"
)
FILL_PENDING = text(
    "INSERT INTO outbox (tenant_id, kind) SELECT :t, 'attribution_recompute' FROM generate_series(1, 50)"
)
# What a completion finds (its WHERE clause, without the writes, whose index upkeep says nothing
# about the lookup).
COMPLETE_FINDS = "SELECT count(*) FROM outbox WHERE " + COMPLETE_OUTBOX_SQL.text.split(" WHERE ", 1)[1]
# The control: the tenant's recompute rows up to an id, through the (tenant_id, id) index the
# completion used before the partial one existed. It reads the whole history.
# The busy-tenants question inside outbox_claim(), as the function's current definition asks it.
OUTBOX_CLAIM = (REPO_ROOT / "backend" / "sql" / "functions" / "outbox_claim.sql").read_text(encoding="utf-8")
BUSY_TENANTS = (
    OUTBOX_CLAIM.split("WITH busy AS (", 1)[1].split("\n    )\n", 1)[0].replace("p_coalesce_s", ":coalesce_s")
)
assert BUSY_TENANTS.count("SELECT b.tenant_id FROM outbox b") == 2, BUSY_TENANTS
HISTORY_WALK = (
    "SELECT count(*) FROM outbox WHERE tenant_id = :tenant_id AND kind = 'attribution_recompute' AND id <= :up_to"
)


def pages_with_history(engine: Engine, owner: Engine, history: int) -> dict[str, int]:
    """Pages the busy-tenants question and a completion read for a tenant with 50 pending recompute
    rows and ``history`` finished ones, and what the control walk reads."""
    with engine.begin() as conn:
        tenant = create_tenant(conn, f"history-{uuid.uuid4().hex[:6]}")
    with tenant_transaction_sync(tenant.context, engine) as conn:
        conn.execute(FILL_HISTORY, {"t": tenant.tenant_id, "n": history})
        conn.execute(FILL_PENDING, {"t": tenant.tenant_id})
        up_to = conn.execute(text("SELECT max(id) FROM outbox")).scalar_one()
    with owner.begin() as conn:
        conn.execute(text("ANALYZE outbox"))  # as autovacuum would soon
    values = {"tenant_id": f"'{tenant.tenant_id}'", "up_to": up_to}
    with tenant_transaction_sync(tenant.context, engine) as conn:
        complete = settled_pages_read(conn, bind(COMPLETE_FINDS, **values))
        walk = settled_pages_read(conn, bind(HISTORY_WALK, **values))
    with owner.begin() as conn:  # as the claim runs it: app_system, every tenant's rows
        conn.execute(text(f"SET LOCAL ROLE {SYSTEM_ROLE}"))
        busy = settled_pages_read(conn, bind(BUSY_TENANTS, coalesce_s=0.5))
    return {"busy": busy, "complete": complete, "walk": walk}


def test_busy_check_and_completion_do_not_walk_the_outbox_history(runtime_engine: Engine, owner_engine: Engine) -> None:
    fresh = pages_with_history(runtime_engine, owner_engine, 0)
    long = pages_with_history(runtime_engine, owner_engine, HISTORY)
    assert long["walk"] > 100, f"the control should walk the history ({long})"
    assert long["complete"] <= fresh["complete"] + 10, f"with history {long}, without {fresh}"
    assert long["busy"] <= min(fresh["busy"] + 15, long["walk"] / 10), f"with history {long}, without {fresh}"
