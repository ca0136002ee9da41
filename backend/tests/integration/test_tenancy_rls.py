"""Tenancy is enforced by PostgreSQL itself: forced RLS, transaction-local context, least privilege."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app.core.db import pipelined, tenant_statement_sync, tenant_transaction_sync
from app.core.roles import OWNER_ROLE
from app.core.tenancy import CONTEXT_GUC, TenantContext
from scripts.harness import sync_dsn
from scripts.topology import Topology

from ..conftest import one_connection_pool
from .conftest import TwoTenants

COUNT_EVENTS = text("SELECT count(*) FROM attribution_events")
TENANT_IDS = text("SELECT DISTINCT tenant_id FROM attribution_events")


def test_each_tenant_sees_only_its_own_rows(runtime_engine: Engine, two_tenants: TwoTenants) -> None:
    for own, other in ((two_tenants.a, two_tenants.b), (two_tenants.b, two_tenants.a)):
        with tenant_transaction_sync(own.context, runtime_engine) as conn:
            visible = {row[0] for row in conn.execute(TENANT_IDS)}
            assert visible == {own.tenant_id}
            hidden = conn.execute(
                text("SELECT count(*) FROM tenants WHERE tenant_id = :t"), {"t": other.tenant_id}
            ).scalar_one()
            assert hidden == 0


def test_the_pipelined_statement_is_scoped_the_same_way(runtime_engine: Engine, two_tenants: TwoTenants) -> None:
    for own in (two_tenants.a, two_tenants.b):
        rows = tenant_statement_sync(own.context, pipelined(TENANT_IDS), {}, runtime_engine)
        assert {row[0] for row in rows} == {own.tenant_id}


def test_rows_of_both_tenants_exist_for_a_bypassing_reader(ops_engine: Engine, two_tenants: TwoTenants) -> None:
    """Negative control: the rows the runtime cannot see are really there (ops_reader bypasses RLS)."""
    with ops_engine.connect() as conn:
        visible = {row[0] for row in conn.execute(TENANT_IDS)}
    assert {two_tenants.a.tenant_id, two_tenants.b.tenant_id} <= visible


def test_no_tenant_context_sees_zero_rows(runtime_engine: Engine, two_tenants: TwoTenants) -> None:
    with runtime_engine.connect() as conn:
        assert conn.execute(COUNT_EVENTS).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM api_keys")).scalar_one() == 0


def test_writes_into_another_tenant_are_refused(runtime_engine: Engine, two_tenants: TwoTenants) -> None:
    with pytest.raises(DBAPIError, match="row-level security"):  # noqa: SIM117
        with tenant_transaction_sync(two_tenants.a.context, runtime_engine) as conn:
            conn.execute(
                text(
                    "INSERT INTO attribution_events (tenant_id, platform, external_event_id, event_type, "
                    "occurred_at) VALUES (:t, 'stripe', 'smuggled', 'conversion', now())"
                ),
                {"t": two_tenants.b.tenant_id},
            )


def test_context_does_not_leak_between_transactions_on_one_pooled_connection(
    topology: Topology, two_tenants: TwoTenants
) -> None:
    assert topology.dsns is not None
    with one_connection_pool(topology.dsns.runtime_sync) as engine:
        with tenant_transaction_sync(two_tenants.a.context, engine) as conn:
            first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            assert conn.execute(COUNT_EVENTS).scalar_one() == 1
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == first_pid  # same session
            assert conn.execute(text(f"SELECT current_setting('{CONTEXT_GUC}', true)")).scalar_one() in (
                "",
                None,
            )
            assert conn.execute(COUNT_EVENTS).scalar_one() == 0
        with tenant_transaction_sync(two_tenants.b.context, engine) as conn:
            assert {row[0] for row in conn.execute(TENANT_IDS)} == {two_tenants.b.tenant_id}


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        (f"SET ROLE {OWNER_ROLE}", "permission denied"),
        ("ALTER TABLE attribution_events DISABLE ROW LEVEL SECURITY", "must be owner"),
        ("ALTER TABLE attribution_events NO FORCE ROW LEVEL SECURITY", "must be owner"),
        ("DROP POLICY tenant_isolation ON attribution_events", "must be owner"),
        ("CREATE ROLE sneaky LOGIN", "permission denied"),
        ("CREATE TABLE scratch (id int)", "permission denied"),
        ("ALTER ROLE app_user BYPASSRLS", "permission denied"),
    ],
)
def test_runtime_role_cannot_escalate(runtime_engine: Engine, statement: str, error: str) -> None:
    with pytest.raises(DBAPIError, match=error), runtime_engine.begin() as conn:
        conn.execute(text(statement))


def test_row_security_off_is_refused_rather_than_bypassed(runtime_engine: Engine, two_tenants: TwoTenants) -> None:
    with pytest.raises(DBAPIError, match="row-level security"), runtime_engine.begin() as conn:
        conn.execute(text("SET LOCAL row_security = off"))
        conn.execute(COUNT_EVENTS)


def test_owner_can_do_what_runtime_cannot(owner_engine: Engine) -> None:
    """Negative control for the escalation test: the owner may run the same DDL, so the role is the guard."""
    with owner_engine.begin() as conn:
        conn.execute(text("ALTER TABLE attribution_events NO FORCE ROW LEVEL SECURITY"))
        conn.execute(text("ALTER TABLE attribution_events FORCE ROW LEVEL SECURITY"))


def test_wrong_password_is_refused(topology: Topology) -> None:
    assert topology.dsns is not None
    good = sync_dsn(topology.dsns.runtime_sync)
    bad = make_url(good).set(password="not-the-password").render_as_string(hide_password=False)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad, connect_timeout=5).close()
    with psycopg.connect(good, connect_timeout=5) as conn:  # control: the right one gets in
        assert conn.execute("SELECT current_user").fetchone() == ("app_user",)


def test_runtime_identity_is_not_privileged(runtime_engine: Engine) -> None:
    with runtime_engine.connect() as conn:
        row = conn.execute(
            text("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
    assert tuple(row) == ("app_user", False, False)


def test_tenant_context_is_required_to_see_the_tenant_row(runtime_engine: Engine, two_tenants: TwoTenants) -> None:
    stranger = TenantContext(two_tenants.a.tenant_id, "someone-else")
    with tenant_transaction_sync(stranger, runtime_engine) as conn:  # user does not matter for tenant tables
        assert conn.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 1
