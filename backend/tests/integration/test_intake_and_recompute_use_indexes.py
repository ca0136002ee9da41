"""A duplicate webhook and a last-touch recompute read the same pages however many events other
tenants have stored: both name their tenant, so an index answers them (migration 0015 for the
intake, ``app.attribution.last_touch`` for the recompute). Counted in pages read, not milliseconds
(see test_outbox_watermark).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

from app.attribution import last_touch
from app.core.db import tenant_transaction_sync
from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.harness import REPO_ROOT

from .test_outbox_watermark import bind, pages_read, settled_pages_read

pytestmark = pytest.mark.integration

BUSY_TENANTS, EVENTS_EACH = 40, 750  # 30,000 events of other tenants
FILL = text(
    "INSERT INTO attribution_events (tenant_id, platform, external_event_id, webhook_id, event_type, customer_key, "
    "channel, occurred_at, revenue_cents, currency, payload) "
    "SELECT :t, 'stripe', 'evt-' || g, 'msg-' || g, CASE WHEN g % 5 = 0 THEN 'conversion' ELSE 'touchpoint' END, "
    "'cust-' || (g % 400), 'search', now() - make_interval(mins => g), 100, 'usd', '{}' FROM generate_series(1, :n) g"
)
# The first argument names the tenant: a signed context token for the function at head (migration
# 0024), the tenant id itself for the control below; the head's last one is the request id (0025).
INTAKE = (
    "SELECT * FROM {function}('{tenant}', 'stripe', '{event}', '{message}', 'conversion', 'cust-1', "
    "NULL, now(), 100, 'usd', '{{}}'{request_id})"
)
HEAD_REQUEST_ID = ", 'req-index-test'"
# The control: the intake function as migration 0010 wrote it (and 0015's downgrade restores it), as
# a temporary function of the owner's session (row-level security is forced, so it binds the owner too).
INTAKE_BEFORE_0015 = (
    (REPO_ROOT / "backend" / "alembic" / "versions" / "sql" / "0015_downgrade_webhook_intake_event.sql")
    .read_text(encoding="utf-8")
    .replace("CREATE OR REPLACE FUNCTION webhook_intake_event(", "CREATE FUNCTION pg_temp.intake_before_0015(", 1)
)
assert "pg_temp.intake_before_0015(" in INTAKE_BEFORE_0015
UNSCOPED_RECOMPUTE = last_touch.LAST_TOUCH_ROWS.replace("c.tenant_id = :tenant_id AND ", "")


def quiet_tenant(engine: Engine) -> ProvisionedTenant:
    with engine.begin() as conn:
        return create_tenant(conn, f"quiet-{uuid.uuid4().hex[:6]}")


def recompute_rows(sql: str, tenant: ProvisionedTenant) -> str:
    """The recompute's query for ``tenant`` (its rows, not the insert that stores them)."""
    return bind(sql, tenant_id=f"'{tenant.tenant_id}'", lookback_days=30)


def duplicate_intake(function: str, tenant: str, request_id: str = HEAD_REQUEST_ID) -> str:
    """A delivery of the event the tenant's first intake stored: a duplicate."""
    return INTAKE.format(function=function, tenant=tenant, event="evt-dup", message="again", request_id=request_id)


@pytest.fixture(scope="module")
def crowded(runtime_engine: Engine, owner_engine: Engine) -> None:
    """Other tenants' 30,000 events, with statistics as autovacuum would soon gather them."""
    for _ in range(BUSY_TENANTS):
        busy = quiet_tenant(runtime_engine)
        with tenant_transaction_sync(busy.context, runtime_engine) as conn:
            conn.execute(FILL, {"t": busy.tenant_id, "n": EVENTS_EACH})
    with owner_engine.begin() as conn:
        conn.execute(text("ANALYZE attribution_events"))


@pytest.mark.usefixtures("crowded")
def test_a_duplicate_webhook_does_not_scan_other_tenants_events(runtime_engine: Engine, owner_engine: Engine) -> None:
    tenant = quiet_tenant(runtime_engine)
    token = tenant.context.token()  # in the SQL text here only: EXPLAIN takes no parameters
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        first = conn.execute(
            text(
                INTAKE.format(
                    function="webhook_intake_event",
                    tenant=token,
                    event="evt-dup",
                    message="msg-dup",
                    request_id=HEAD_REQUEST_ID,
                )
            )
        ).one()
        duplicate = settled_pages_read(conn, duplicate_intake("webhook_intake_event", token))
        again = conn.execute(
            text(
                INTAKE.format(
                    function="webhook_intake_event",
                    tenant=token,
                    event="evt-dup",
                    message="last",
                    request_id=HEAD_REQUEST_ID,
                )
            )
        ).one()
    with tenant_transaction_sync(tenant.context, owner_engine) as conn:
        conn.execute(text(INTAKE_BEFORE_0015))
        before = settled_pages_read(conn, duplicate_intake("pg_temp.intake_before_0015", str(tenant.tenant_id), ""))
    assert (first.duplicate, again.duplicate, again.event_id) == (False, True, first.event_id)
    assert before > 100, f"the control (0010's lookup) should read other tenants' events ({before} pages)"
    assert duplicate < min(40, before / 4), f"a duplicate intake read {duplicate} pages; 0010's read {before}"


@pytest.mark.usefixtures("crowded")
def test_a_recompute_does_not_scan_other_tenants_events(runtime_engine: Engine, ops_engine: Engine) -> None:
    tenant = quiet_tenant(runtime_engine)
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        conn.execute(
            text(
                INTAKE.format(
                    function="webhook_intake_event",
                    tenant=tenant.context.token(),
                    event="evt-1",
                    message="msg-1",
                    request_id=HEAD_REQUEST_ID,
                )
            )
        )
        scoped = settled_pages_read(conn, recompute_rows(last_touch.LAST_TOUCH_ROWS, tenant))
        written = last_touch.recompute(conn, tenant.tenant_id, 30)
    with ops_engine.connect() as conn:
        # Control: the statement without its tenant filter where nothing else scopes it (a role that
        # bypasses RLS; since 0017 no policy ORs a second scope in, RLS alone would scope it too).
        unscoped = pages_read(conn, recompute_rows(UNSCOPED_RECOMPUTE, tenant))
    assert written == 1, "the recompute still writes the tenant's one conversion"
    assert unscoped > 300, f"the control should read the other tenant's events ({unscoped} pages)"
    assert scoped < min(40, unscoped / 4), f"a recompute read {scoped} pages; the unscoped one reads {unscoped}"
