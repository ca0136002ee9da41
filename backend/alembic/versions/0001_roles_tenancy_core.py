"""Roles' grants, tenant context functions, and the first tenant tables with forced RLS.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from app.core.ddl import force_tenant_rls, grant_runtime
from app.core.roles import ALL_ROLES, OPS_READER_ROLE, READ_ONLY_GROUP, READ_WRITE_GROUP

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TENANT_TABLES = ("tenants", "api_keys", "attribution_events")


def _require_roles() -> None:
    present = {
        row[0]
        for row in op.get_bind().execute(
            text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:names)"), {"names": list(ALL_ROLES)}
        )
    }
    missing = sorted(set(ALL_ROLES) - present)
    if missing:
        raise RuntimeError(
            f"roles {missing} do not exist: provision them as the bootstrap superuser first "
            "(python -m scripts.topology up does it)"
        )


def upgrade() -> None:
    _require_roles()
    op.execute(f"GRANT USAGE ON SCHEMA public TO {READ_WRITE_GROUP}, {READ_ONLY_GROUP}, {OPS_READER_ROLE}")
    op.execute(f"GRANT SELECT ON alembic_version TO {READ_WRITE_GROUP}, {READ_ONLY_GROUP}, {OPS_READER_ROLE}")

    # A missing or empty GUC yields NULL, and NULL matches no row: no context, no data.
    op.execute(
        """
        CREATE FUNCTION app_current_tenant() RETURNS uuid LANGUAGE sql STABLE AS
        $$ SELECT nullif(current_setting('app.current_tenant_id', true), '')::uuid $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION app_current_user() RETURNS text LANGUAGE sql STABLE AS
        $$ SELECT nullif(current_setting('app.current_user_id', true), '') $$
        """
    )

    op.execute(
        """
        CREATE TABLE tenants (
            tenant_id   uuid PRIMARY KEY,
            name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE api_keys (
            id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id   uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            user_id     text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 200),
            key_hash    char(64) NOT NULL UNIQUE,
            label       text NOT NULL DEFAULT '',
            created_at  timestamptz NOT NULL DEFAULT now(),
            revoked_at  timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE attribution_events (
            id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id          uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            platform           text NOT NULL,
            external_event_id  text NOT NULL,
            event_type         text NOT NULL CHECK (event_type IN ('touchpoint', 'conversion')),
            customer_key       text,
            channel            text,
            occurred_at        timestamptz NOT NULL,
            revenue_cents      bigint,
            currency           char(3),
            payload            jsonb NOT NULL DEFAULT '{}'::jsonb,
            received_at        timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, platform, external_event_id)
        )
        """
    )
    op.execute("CREATE INDEX attribution_events_tenant_time ON attribution_events (tenant_id, occurred_at)")

    for table in TENANT_TABLES:
        force_tenant_rls(table)
        grant_runtime(table)
    # Authentication must find a key before it knows the tenant: a caller who already holds the
    # key (and so its hash) may read exactly that one row, nothing else.
    op.execute(
        """
        CREATE POLICY key_lookup ON api_keys FOR SELECT
        USING (key_hash = nullif(current_setting('app.api_key_hash', true), ''))
        """
    )


def downgrade() -> None:
    for table in reversed(TENANT_TABLES):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP FUNCTION app_current_user()")
    op.execute("DROP FUNCTION app_current_tenant()")
