"""A recompute completes only outbox rows whose events it saw.

Outbox ids are taken at insert time but become visible at commit, so a row with a lower id can
commit while a recompute covering that id is running. The recompute runs in READ COMMITTED, one
snapshot per statement: if it completed its rows after computing, that late row would be marked
done for an event the results never counted, and nothing would send it again.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text

from app.attribution import last_touch
from app.core.db import tenant_transaction_sync
from app.core.tenancy import SET_CONTEXT_SQL
from app.tenants.service import create_tenant

pytestmark = pytest.mark.integration

INSERT_CONVERSION = text(
    """
    WITH e AS (
        INSERT INTO attribution_events (tenant_id, platform, external_event_id, event_type, customer_key,
                                        occurred_at, revenue_cents, currency)
        VALUES (:tenant_id, 'stripe', :external_id, 'conversion', 'c1', now(), 100, 'USD') RETURNING tenant_id)
    INSERT INTO outbox (tenant_id, kind, dispatched_at)
    SELECT tenant_id, 'attribution_recompute', now() FROM e RETURNING id
    """
)
COUNTED = text("SELECT coalesce(sum(conversions), 0) FROM attribution_results WHERE model = 'last_touch'")
DONE_WITHOUT_RESULT = text("SELECT count(*) FROM outbox WHERE completed_at IS NOT NULL")


def add_conversion(conn: Connection, tenant_id: uuid.UUID) -> int:
    return int(conn.execute(INSERT_CONVERSION, {"tenant_id": tenant_id, "external_id": uuid.uuid4().hex}).scalar_one())


def test_a_row_that_commits_during_a_recompute_is_not_completed_unseen(runtime_engine: Engine) -> None:
    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, f"late-commit-{uuid.uuid4().hex[:6]}")

    with runtime_engine.connect() as late:  # holds a lower outbox id, uncommitted
        late_tx = late.begin()
        late.execute(SET_CONTEXT_SQL, tenant.context.as_params())
        add_conversion(late, tenant.tenant_id)
        with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
            up_to = add_conversion(conn, tenant.tenant_id)  # the relay dispatched up to this id

        def commit_late_row_midway(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.startswith("UPDATE outbox SET completed_at") and late_tx.is_active:
                late_tx.commit()  # the late row commits while the recompute is under way

        with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
            event.listen(conn, "before_cursor_execute", commit_late_row_midway)
            last_touch.recompute(conn, tenant.tenant_id, lookback_days=30, up_to_outbox_id=up_to)
            event.remove(conn, "before_cursor_execute", commit_late_row_midway)
        assert not late_tx.is_active, "the interleaving under test did not happen"

    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        completed = conn.execute(DONE_WITHOUT_RESULT).scalar_one()
        counted = conn.execute(COUNTED).scalar_one()
    assert completed == 2  # both rows are at or below up_to
    assert counted == 2, "a completed outbox row's conversion is missing from the results"
