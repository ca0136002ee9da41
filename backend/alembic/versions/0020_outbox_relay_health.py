"""The outbox relay can no longer die unseen: each relay records a heartbeat, and the backlog it
leaves behind (how many rows wait to be sent, and for how long) is measurable across tenants.

- ``outbox_relay_heartbeats``: one row per worker (its Celery node name), written by that worker's
  relay at most once a second while its passes succeed, and with the error when one fails. The
  worker probe (``/health/worker``) reports its own relay's heartbeat and fails when it is stale.
- ``metrics_outbox()`` (app_system, like 0017's functions): the rows not yet sent and the age of
  the oldest, for ``/metrics`` and ``/health/ready``. It reads the ``outbox_pending`` partial index.
- ``metrics_llm_shutoffs()`` (app_system): how many users are shut off this hour, for an alert.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import install_system_functions
from app.core.roles import OPS_READER_ROLE, READ_WRITE_GROUP, SYSTEM_ROLE

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

DEFINER = "LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp STABLE"
FUNCTIONS = {
    "metrics_outbox()": f"""
CREATE FUNCTION metrics_outbox()
RETURNS TABLE (pending bigint, oldest_pending_age_s double precision) {DEFINER} AS $$
    SELECT (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL),
           coalesce(extract(epoch FROM now() - (
               SELECT o.created_at FROM outbox o WHERE o.dispatched_at IS NULL ORDER BY o.id LIMIT 1)), 0)::float8
$$""",
    "metrics_llm_shutoffs()": f"""
CREATE FUNCTION metrics_llm_shutoffs() RETURNS bigint {DEFINER} AS $$
    SELECT count(*) FROM llm_hourly_shutoff WHERE hour_start = date_trunc('hour', now()) AND shut_off
$$""",
}


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE outbox_relay_heartbeats (
            worker      text PRIMARY KEY,
            beat_at     timestamptz NOT NULL DEFAULT now(),
            passes      bigint NOT NULL DEFAULT 0,
            last_error  text,
            error_at    timestamptz
        )
        """
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON outbox_relay_heartbeats TO {READ_WRITE_GROUP}")
    op.execute(f"GRANT SELECT ON outbox_relay_heartbeats TO {OPS_READER_ROLE}")
    op.execute(f"GRANT SELECT ON llm_hourly_shutoff TO {SYSTEM_ROLE}")
    op.execute(f"CREATE POLICY system_role ON llm_hourly_shutoff FOR SELECT TO {SYSTEM_ROLE} USING (true)")
    install_system_functions(FUNCTIONS)


def downgrade() -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    op.execute("DROP POLICY system_role ON llm_hourly_shutoff")
    op.execute(f"REVOKE SELECT ON llm_hourly_shutoff FROM {SYSTEM_ROLE}")
    op.execute("DROP TABLE outbox_relay_heartbeats")
