"""The LLM boundary's state: ledger (which is also the idempotency claim), budgets, hourly shutoff,
breaker, cache, kill switch, distillation records, jobs and their materialized results.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import force_tenant_rls, grant_runtime
from app.core.roles import OPS_READER_ROLE, READ_WRITE_GROUP

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

USER_SCOPED = (
    "llm_api_calls",
    "llm_budget_periods",
    "llm_budget_reservations",
    "llm_hourly_shutoff",
    "llm_distillation_records",
    "llm_jobs",
    "investigations",
    "budget_optimization_jobs",
)
TENANT_SCOPED = ("llm_response_cache",)
GLOBAL = ("llm_breaker_state", "llm_kill_switch")  # per provider, per deployment: no tenant


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE llm_api_calls (
            id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id          uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            user_id            text NOT NULL,
            request_id         text NOT NULL,
            endpoint           text NOT NULL,
            complexity         smallint,
            tier               text CHECK (tier IN ('cheap', 'standard', 'premium')),
            provider           text,
            model              text,
            prompt_sha256      char(64) NOT NULL,
            status             text NOT NULL CHECK (status IN ('pending', 'succeeded', 'blocked', 'failed')),
            blocked_reason     text,
            failure_reason     text,
            was_cached         boolean NOT NULL DEFAULT false,
            provider_attempted boolean NOT NULL DEFAULT false,
            prompt_tokens      integer,
            completion_tokens  integer,
            cost_cents         numeric(14, 4) NOT NULL DEFAULT 0,
            latency_ms         numeric(12, 3),
            reasoning_ref      uuid,
            metadata_ref       uuid,
            response           jsonb,
            created_at         timestamptz NOT NULL DEFAULT now(),
            finished_at        timestamptz,
            UNIQUE (tenant_id, request_id, endpoint)
        )
        """
    )
    op.execute("CREATE INDEX llm_api_calls_time ON llm_api_calls (created_at)")
    op.execute(
        """
        CREATE TABLE llm_budget_periods (
            tenant_id       uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            user_id         text NOT NULL,
            period_start    date NOT NULL,
            limit_cents     numeric(14, 4) NOT NULL,
            reserved_cents  numeric(14, 4) NOT NULL DEFAULT 0 CHECK (reserved_cents >= 0),
            spent_cents     numeric(14, 4) NOT NULL DEFAULT 0 CHECK (spent_cents >= 0),
            PRIMARY KEY (tenant_id, user_id, period_start),
            CHECK (reserved_cents + spent_cents <= limit_cents)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE llm_budget_reservations (
            id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id     uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            user_id       text NOT NULL,
            call_id       uuid NOT NULL REFERENCES llm_api_calls (id) ON DELETE CASCADE,
            period_start  date NOT NULL,
            amount_cents  numeric(14, 4) NOT NULL,
            status        text NOT NULL CHECK (status IN ('held', 'settled', 'released')),
            created_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE llm_hourly_shutoff (
            tenant_id    uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            user_id      text NOT NULL,
            hour_start   timestamptz NOT NULL,
            spent_cents  numeric(14, 4) NOT NULL DEFAULT 0,
            shut_off     boolean NOT NULL DEFAULT false,
            reason       text,
            PRIMARY KEY (tenant_id, user_id, hour_start)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE llm_breaker_state (
            provider              text NOT NULL,
            model                 text NOT NULL,
            state                 text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
            consecutive_failures  integer NOT NULL DEFAULT 0,
            opened_at             timestamptz,
            updated_at            timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (provider, model)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE llm_response_cache (
            tenant_id   uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            cache_key   char(64) NOT NULL,
            response    jsonb NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, cache_key)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE llm_kill_switch (
            id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            enabled     boolean NOT NULL DEFAULT false,
            reason      text,
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("INSERT INTO llm_kill_switch (id, enabled) VALUES (1, false)")
    op.execute(
        """
        CREATE TABLE llm_distillation_records (
            id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id   uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            user_id     text NOT NULL,
            call_id     uuid NOT NULL REFERENCES llm_api_calls (id) ON DELETE CASCADE,
            kind        text NOT NULL CHECK (kind IN ('reasoning', 'metadata')),
            content     jsonb NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE llm_jobs (
            id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id   uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            user_id     text NOT NULL,
            task_type   text NOT NULL
                        CHECK (task_type IN ('route', 'explanation', 'investigation', 'budget_optimization')),
            request_id  text NOT NULL,
            question    text NOT NULL DEFAULT '',
            status      text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'succeeded', 'blocked', 'failed')),
            call_id     uuid REFERENCES llm_api_calls (id),
            result      jsonb,
            created_at  timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            UNIQUE (tenant_id, request_id, task_type)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE investigations (
            id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id   uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            user_id     text NOT NULL,
            job_id      uuid NOT NULL UNIQUE REFERENCES llm_jobs (id) ON DELETE CASCADE,
            findings    jsonb NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE budget_optimization_jobs (
            id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id              uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            user_id                text NOT NULL,
            job_id                 uuid NOT NULL UNIQUE REFERENCES llm_jobs (id) ON DELETE CASCADE,
            recommended_allocation jsonb NOT NULL,
            rationale              text NOT NULL,
            created_at             timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    for table in USER_SCOPED:
        force_tenant_rls(table, user_scoped=True)
        grant_runtime(table)
    for table in TENANT_SCOPED:
        force_tenant_rls(table)
        grant_runtime(table)
    for table in GLOBAL:
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON {table} TO {READ_WRITE_GROUP}")
        op.execute(f"GRANT SELECT ON {table} TO {OPS_READER_ROLE}")
    op.execute("ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check")
    op.execute(
        "ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN "
        "('attribution_recompute', 'attribution_job', 'reconciliation_run', 'llm_task'))"
    )


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE kind = 'llm_task'")
    op.execute("ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check")
    op.execute(
        "ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN "
        "('attribution_recompute', 'attribution_job', 'reconciliation_run'))"
    )
    for table in (
        "budget_optimization_jobs",
        "investigations",
        "llm_jobs",
        "llm_distillation_records",
        "llm_kill_switch",
        "llm_response_cache",
        "llm_breaker_state",
        "llm_hourly_shutoff",
        "llm_budget_reservations",
        "llm_budget_periods",
        "llm_api_calls",
    ):
        op.execute(f"DROP TABLE {table}")
