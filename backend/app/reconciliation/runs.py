"""A reconciliation run, worker side: fetch, compare, and write the run with its items at once.

The fetch happens outside any transaction; then one transaction either writes every item with
the totals and digest, or (on a failed fetch) marks the run failed with its reason and no items.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Connection, Engine, text

from app.core.db import tenant_transaction_sync
from app.core.sealing import PURPOSE_PLATFORM_API_KEY, open_or_none
from app.core.settings import Settings
from app.core.tenancy import TenantContext
from app.outbox import relay as outbox
from app.reconciliation.client import FetchError, PaymentsClient
from app.reconciliation.compare import compare, digest, totals

CLAIM_SQL = text(
    """
    UPDATE reconciliation_runs SET status = 'running' WHERE id = :run_id AND status IN ('queued', 'running')
    RETURNING platform, window_start, window_end
    """
)
CONNECTION_SQL = text("SELECT api_key_sealed FROM platform_connections WHERE platform = :platform")
KEY_DOES_NOT_OPEN = "the platform connection's key does not open with the key ring; save it again"
LEDGER_SQL = text(
    """
    SELECT payload->'data'->'object'->>'id' AS external_id, revenue_cents
    FROM attribution_events
    WHERE platform = :platform AND event_type = 'conversion'
      AND occurred_at >= :start AND occurred_at < :end
    """
)
FINISH_SQL = text(
    """
    UPDATE reconciliation_runs SET status = :status, failure_reason = :reason, totals = CAST(:totals AS jsonb),
           digest = :digest, pages_fetched = :pages, retries = :retries, finished_at = now()
    WHERE id = :run_id
    """
)
INSERT_ITEMS_SQL = text(
    """
    INSERT INTO reconciliation_items (run_id, tenant_id, external_id, status, ledger_amount_cents,
                                      platform_amount_cents)
    SELECT :run_id, :tenant_id, i->>'external_id', i->>'status', (i->>'ledger')::bigint, (i->>'platform')::bigint
    FROM jsonb_array_elements(CAST(:items AS jsonb)) AS i
    """
)


def _finish(conn: Connection, run_id: uuid.UUID, status: str, **values: Any) -> None:
    params = {
        "run_id": run_id,
        "status": status,
        "reason": None,
        "totals": None,
        "digest": None,
        "pages": 0,
        "retries": 0,
        **values,
    }
    conn.execute(FINISH_SQL, params)
    outbox.complete(conn, "reconciliation_run", run_id)


def execute(ctx: TenantContext, run_id: uuid.UUID, settings: Settings, engine: Engine | None = None) -> str:
    """Run one reconciliation; returns the final status. Safe to call twice for the same run."""
    with tenant_transaction_sync(ctx, engine) as conn:
        run = conn.execute(CLAIM_SQL, {"run_id": run_id}).first()
        if run is None:
            return "skipped"
        sealed = conn.execute(CONNECTION_SQL, {"platform": run.platform}).scalar_one_or_none()
        ledger = {
            row.external_id: int(row.revenue_cents or 0)
            for row in conn.execute(
                LEDGER_SQL, {"platform": run.platform, "start": run.window_start, "end": run.window_end}
            )
            if row.external_id
        }
    api_key = None if sealed is None else open_or_none(sealed, ctx.tenant_id, PURPOSE_PLATFORM_API_KEY)
    if api_key is None or not settings.payments_base_url:
        reason = "no payments API configured"
        if api_key is None:
            reason = "no platform connection for this tenant" if sealed is None else KEY_DOES_NOT_OPEN
        with tenant_transaction_sync(ctx, engine) as conn:
            _finish(conn, run_id, "failed", reason=reason)
        return "failed"
    client = PaymentsClient(
        settings.payments_base_url,
        api_key,
        settings.reconciliation_page_size,
        settings.reconciliation_max_retries,
        settings.reconciliation_max_retry_after_s,
    )
    try:
        fetched = client.fetch_window(run.window_start, run.window_end)
    except FetchError as exc:
        with tenant_transaction_sync(ctx, engine) as conn:
            _finish(conn, run_id, "failed", reason=str(exc))
        return "failed"
    platform = {str(t["source"]): int(t["amount"]) for t in fetched.transactions}
    items = compare(ledger, platform)
    encoded = json.dumps(
        [
            {
                "external_id": i.external_id,
                "status": i.status,
                "ledger": i.ledger_amount_cents,
                "platform": i.platform_amount_cents,
            }
            for i in items
        ]
    )
    with tenant_transaction_sync(ctx, engine) as conn:
        conn.execute(text("DELETE FROM reconciliation_items WHERE run_id = :run_id"), {"run_id": run_id})
        conn.execute(INSERT_ITEMS_SQL, {"run_id": run_id, "tenant_id": ctx.tenant_id, "items": encoded})
        _finish(
            conn,
            run_id,
            "succeeded",
            totals=json.dumps(totals(items)),
            digest=digest(items),
            pages=fetched.pages,
            retries=fetched.retries,
        )
    return "succeeded"
