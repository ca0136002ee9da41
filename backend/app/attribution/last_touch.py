"""Deterministic last-touch: each conversion credits the latest touchpoint of the same customer
inside the lookback window. Ties break on (occurred_at, external_event_id, id), so reruns match.

The whole tenant is recomputed under a per-tenant advisory lock: bursts of events coalesce into
one recompute, and two recomputes of one tenant never interleave. The statements name the tenant
although row-level security scopes them too: the name is what the planner answers with the
tenant's indexes (test_intake_and_recompute_use_indexes.py counts the pages read).
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, text

from app.core.queries import query

LOCK_SQL = text("SELECT pg_advisory_xact_lock(hashtextextended('last_touch:' || :tenant_id, 0))")
CLEAR_SQL = text("DELETE FROM attribution_results WHERE tenant_id = :tenant_id AND model = 'last_touch'")
# The tenant's last-touch rows (backend/sql/queries/last_touch_rows.sql): each conversion with the
# latest touchpoint inside the lookback.
LAST_TOUCH_ROWS = query("last_touch_rows")
RECOMPUTE_SQL = text(
    "INSERT INTO attribution_results (tenant_id, model, day, channel, revenue_cents, conversions)\n" + LAST_TOUCH_ROWS
)
COMPLETE_OUTBOX_SQL = text(
    "UPDATE outbox SET completed_at = now() "
    "WHERE tenant_id = :tenant_id AND kind = 'attribution_recompute' AND id <= :up_to AND completed_at IS NULL"
)


def recompute(conn: Connection, tenant_id: uuid.UUID, lookback_days: int, up_to_outbox_id: int | None = None) -> int:
    """Replace the tenant's last-touch results; returns the number of (day, channel) rows written.

    Runs inside the caller's tenant transaction, so RLS scopes every statement to that tenant.
    """
    conn.execute(LOCK_SQL, {"tenant_id": str(tenant_id)})
    if up_to_outbox_id is not None:
        # Before the recompute, not after: each statement here reads its own snapshot, so an outbox
        # row committed between a recompute and a later completion would be marked done for an
        # event the recompute never saw. Rows completed first are all visible to the recompute.
        conn.execute(COMPLETE_OUTBOX_SQL, {"tenant_id": tenant_id, "up_to": up_to_outbox_id})
    conn.execute(CLEAR_SQL, {"tenant_id": tenant_id})
    written = conn.execute(RECOMPUTE_SQL, {"tenant_id": tenant_id, "lookback_days": lookback_days}).rowcount
    return int(written)
