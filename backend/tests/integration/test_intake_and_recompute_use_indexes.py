"""A duplicate webhook and a last-touch recompute read the same pages however many events other
tenants have stored: both name their tenant, so an index answers them (migration 0015 for the
intake, ``app.attribution.last_touch`` for the recompute). Counted in pages read, not milliseconds
(see test_outbox_watermark).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Connection, Engine, text

from app.attribution import last_touch
from app.core.db import tenant_transaction_sync
from app.services.tenants import ProvisionedTenant, create_tenant
from scripts.topology import Topology

from ..conftest import engine_for
from .test_outbox_watermark import pages_read

pytestmark = pytest.mark.integration

OTHER_TENANTS_EVENTS = 30_000
FILL = text(
    "INSERT INTO attribution_events (tenant_id, platform, external_event_id, webhook_id, event_type, customer_key, "
    "channel, occurred_at, revenue_cents, currency, payload) "
    "SELECT :t, 'stripe', 'evt-' || g, 'msg-' || g, CASE WHEN g % 5 = 0 THEN 'conversion' ELSE 'touchpoint' END, "
    "'cust-' || (g % 400), 'search', now() - make_interval(mins => g), 100, 'usd', '{}' FROM generate_series(1, :n) g"
)
INTAKE = (
    "SELECT * FROM webhook_intake_event('{tenant}', 'stripe', '{event}', '{message}', 'conversion', 'cust-1', "
    "NULL, now(), 100, 'usd', '{{}}')"
)
# The statements as they were before they named the tenant: the controls.
UNSCOPED_DUPLICATE_LOOKUP = (
    "SELECT e.id FROM attribution_events e WHERE e.webhook_id = 'msg-dup' "
    "OR (e.platform = 'stripe' AND e.external_event_id = 'evt-dup') LIMIT 1"
)
UNSCOPED_RECOMPUTE = last_touch.LAST_TOUCH_ROWS.replace("c.tenant_id = :tenant_id AND ", "")


def quiet_tenant(engine: Engine) -> ProvisionedTenant:
    with engine.begin() as conn:
        return create_tenant(conn, f"quiet-{uuid.uuid4().hex[:6]}")


def recompute_pages(conn: Connection, sql: str, tenant: ProvisionedTenant) -> int:
    """Pages the recompute's query reads for ``tenant`` (its rows, not the insert that stores them)."""
    return pages_read(conn, sql.replace(":tenant_id", f"'{tenant.tenant_id}'").replace(":lookback_days", "30"))


@pytest.fixture(scope="module")
def crowded(runtime_engine: Engine, topology: Topology) -> None:
    """Another tenant's 30,000 events, with statistics as autovacuum would soon gather them."""
    busy = quiet_tenant(runtime_engine)
    with tenant_transaction_sync(busy.context, runtime_engine) as conn:
        conn.execute(FILL, {"t": busy.tenant_id, "n": OTHER_TENANTS_EVENTS})
    assert topology.dsns is not None
    owner = engine_for(topology.dsns.migration)
    try:
        with owner.begin() as conn:
            conn.execute(text("ANALYZE attribution_events"))
    finally:
        owner.dispose()


@pytest.mark.usefixtures("crowded")
def test_a_duplicate_webhook_does_not_scan_other_tenants_events(runtime_engine: Engine) -> None:
    tenant = quiet_tenant(runtime_engine)
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        first = conn.execute(text(INTAKE.format(tenant=tenant.tenant_id, event="evt-dup", message="msg-dup"))).one()
        unscoped = pages_read(conn, UNSCOPED_DUPLICATE_LOOKUP)
        pages_read(conn, INTAKE.format(tenant=tenant.tenant_id, event="evt-dup", message="warm-up"))  # plans
        # The lower of two: a call that plans again also reads the catalogs (see the LLM lookups test).
        duplicate = min(
            pages_read(conn, INTAKE.format(tenant=tenant.tenant_id, event="evt-dup", message=f"again-{n}"))
            for n in range(2)
        )
        again = conn.execute(text(INTAKE.format(tenant=tenant.tenant_id, event="evt-dup", message="last"))).one()
    assert (first.duplicate, again.duplicate, again.event_id) == (False, True, first.event_id)
    assert unscoped > 100, f"the control should read the other tenant's events ({unscoped} pages)"
    assert duplicate < min(40, unscoped / 4), (
        f"a duplicate intake read {duplicate} pages; the unscoped lookup reads {unscoped}"
    )


@pytest.mark.usefixtures("crowded")
def test_a_recompute_does_not_scan_other_tenants_events(runtime_engine: Engine) -> None:
    tenant = quiet_tenant(runtime_engine)
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        conn.execute(text(INTAKE.format(tenant=tenant.tenant_id, event="evt-1", message="msg-1")))
        unscoped = recompute_pages(conn, UNSCOPED_RECOMPUTE, tenant)
        recompute_pages(conn, last_touch.LAST_TOUCH_ROWS, tenant)  # plans
        scoped = min(recompute_pages(conn, last_touch.LAST_TOUCH_ROWS, tenant) for _ in range(2))
        written = last_touch.recompute(conn, tenant.tenant_id, 30)
    assert written == 1, "the recompute still writes the tenant's one conversion"
    assert unscoped > 300, f"the control should read the other tenant's events ({unscoped} pages)"
    assert scoped < min(40, unscoped / 4), f"a recompute read {scoped} pages; the unscoped one reads {unscoped}"
