"""Deterministic last-touch: each conversion credits the latest touchpoint of the same customer
inside the lookback window. Ties break on (occurred_at, external_event_id, id), so reruns match.

The whole tenant is recomputed under a per-tenant advisory lock: bursts of events coalesce into
one recompute, and two recomputes of one tenant never interleave. The statements name the tenant
although row-level security scopes them: the events table's policy also admits the metrics scope
(tenant OR scope), which no index answers, so without the name each recompute read every tenant's
events.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, text

LOCK_SQL = text("SELECT pg_advisory_xact_lock(hashtextextended('last_touch:' || :tenant_id, 0))")
CLEAR_SQL = text("DELETE FROM attribution_results WHERE tenant_id = :tenant_id AND model = 'last_touch'")
# The tenant's last-touch rows: each conversion with the latest touchpoint inside the lookback.
LAST_TOUCH_ROWS = """
    SELECT c.tenant_id, 'last_touch', (c.occurred_at AT TIME ZONE 'UTC')::date,
           coalesce(t.channel, 'unattributed'), sum(coalesce(c.revenue_cents, 0)), count(*)
    FROM attribution_events c
    LEFT JOIN LATERAL (
        SELECT tp.channel FROM attribution_events tp
        WHERE tp.tenant_id = c.tenant_id AND tp.event_type = 'touchpoint'
          AND tp.customer_key = c.customer_key
          AND tp.occurred_at <= c.occurred_at
          AND tp.occurred_at > c.occurred_at - make_interval(days => :lookback_days)
        ORDER BY tp.occurred_at DESC, tp.external_event_id DESC, tp.id DESC
        LIMIT 1
    ) t ON true
    WHERE c.tenant_id = :tenant_id AND c.event_type = 'conversion'
    GROUP BY 1, 2, 3, 4
"""
RECOMPUTE_SQL = text(
    "INSERT INTO attribution_results (tenant_id, model, day, channel, revenue_cents, conversions)" + LAST_TOUCH_ROWS
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
