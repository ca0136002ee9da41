"""Platform connections and reconciliation runs with their items.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import force_tenant_rls, grant_runtime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("platform_connections", "reconciliation_runs", "reconciliation_items")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE platform_connections (
            tenant_id   uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            platform    text NOT NULL CHECK (platform IN ('stripe')),
            api_key     text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, platform)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE reconciliation_runs (
            id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id       uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            platform        text NOT NULL,
            window_start    timestamptz NOT NULL,
            window_end      timestamptz NOT NULL CHECK (window_end > window_start),
            status          text NOT NULL DEFAULT 'queued'
                            CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
            failure_reason  text,
            totals          jsonb,
            digest          char(64),
            pages_fetched   integer NOT NULL DEFAULT 0,
            retries         integer NOT NULL DEFAULT 0,
            created_at      timestamptz NOT NULL DEFAULT now(),
            finished_at     timestamptz
        )
        """
    )
    op.execute("CREATE INDEX reconciliation_runs_latest ON reconciliation_runs (tenant_id, platform, created_at DESC)")
    op.execute(
        """
        CREATE TABLE reconciliation_items (
            run_id               uuid NOT NULL REFERENCES reconciliation_runs (id) ON DELETE CASCADE,
            tenant_id            uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            external_id          text NOT NULL,
            status               text NOT NULL CHECK (status IN
                                 ('matched', 'missing_in_ledger', 'missing_on_platform', 'amount_mismatch')),
            ledger_amount_cents    bigint,
            platform_amount_cents  bigint,
            PRIMARY KEY (run_id, external_id)
        )
        """
    )
    for table in TABLES:
        force_tenant_rls(table)
        grant_runtime(table)
    op.execute("ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check")
    op.execute(
        "ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check "
        "CHECK (kind IN ('attribution_recompute', 'attribution_job', 'reconciliation_run'))"
    )


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE kind = 'reconciliation_run'")
    op.execute("ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check")
    op.execute(
        "ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check "
        "CHECK (kind IN ('attribution_recompute', 'attribution_job'))"
    )
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE {table}")
