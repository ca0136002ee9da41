"""Webhook secrets, dead letters, the transactional outbox, attribution jobs and results.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import force_tenant_rls, grant_runtime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("webhook_secrets", "dead_letter_events", "outbox", "attribution_jobs", "attribution_results")


def upgrade() -> None:
    op.execute("ALTER TABLE attribution_events ADD COLUMN webhook_id text")
    op.execute(
        "CREATE UNIQUE INDEX attribution_events_webhook_id ON attribution_events (tenant_id, webhook_id) "
        "WHERE webhook_id IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX attribution_events_touch_lookup ON attribution_events "
        "(tenant_id, customer_key, occurred_at) WHERE event_type = 'touchpoint'"
    )
    op.execute(
        """
        CREATE TABLE webhook_secrets (
            id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id   uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            secret      text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            expires_at  timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE dead_letter_events (
            id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id       uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            platform        text NOT NULL,
            webhook_id      text,
            reason_code     text NOT NULL,
            detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
            payload_sha256  char(64) NOT NULL,
            payload_bytes   integer NOT NULL,
            scrubbed_payload jsonb,
            received_at     timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE outbox (
            id             bigserial PRIMARY KEY,
            tenant_id      uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            kind           text NOT NULL CHECK (kind IN ('attribution_recompute', 'attribution_job')),
            payload        jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at     timestamptz NOT NULL DEFAULT now(),
            dispatched_at  timestamptz,
            completed_at   timestamptz,
            attempts       integer NOT NULL DEFAULT 0,
            last_error     text
        )
        """
    )
    op.execute("CREATE INDEX outbox_pending ON outbox (id) WHERE dispatched_at IS NULL")
    op.execute("CREATE INDEX outbox_unfinished ON outbox (dispatched_at) WHERE completed_at IS NULL")
    op.execute(
        """
        CREATE TABLE attribution_jobs (
            id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id       uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            model           text NOT NULL CHECK (model IN ('last_touch', 'bayesian')),
            status          text NOT NULL DEFAULT 'queued'
                            CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out')),
            params          jsonb NOT NULL DEFAULT '{}'::jsonb,
            result          jsonb,
            fallback_event  text,
            error           text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            started_at      timestamptz,
            finished_at     timestamptz,
            deadline_at     timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE attribution_results (
            tenant_id          uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            model              text NOT NULL,
            day                date NOT NULL,
            channel            text NOT NULL,
            revenue_cents      bigint NOT NULL,
            conversions        integer NOT NULL,
            computed_at        timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, model, day, channel)
        )
        """
    )
    for table in TABLES:
        force_tenant_rls(table)
        grant_runtime(table)
    op.execute("GRANT USAGE, SELECT ON SEQUENCE outbox_id_seq TO app_rw")
    # The relay dispatches every tenant's pending work. Outbox rows carry only ids and kinds, so a
    # transaction that declares itself the relay may see them all; nothing else widens.
    op.execute(
        """
        CREATE POLICY relay_scope ON outbox
        USING (current_setting('app.system_scope', true) = 'outbox_relay')
        WITH CHECK (current_setting('app.system_scope', true) = 'outbox_relay')
        """
    )
    op.execute(
        """
        CREATE POLICY sweeper_scope ON attribution_jobs
        USING (current_setting('app.system_scope', true) = 'outbox_relay')
        WITH CHECK (current_setting('app.system_scope', true) = 'outbox_relay')
        """
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP INDEX attribution_events_touch_lookup")
    op.execute("DROP INDEX attribution_events_webhook_id")
    op.execute("ALTER TABLE attribution_events DROP COLUMN webhook_id")
