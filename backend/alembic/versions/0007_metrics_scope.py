"""Let /metrics aggregate across tenants without a privileged login.

The api connects only as app_user. A transaction that declares app.system_scope = 'metrics' may
read (never write) these tables; the metrics service only ever returns counts and sums from it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("llm_api_calls", "llm_budget_periods", "attribution_events", "dead_letter_events")


def upgrade() -> None:
    for table in TABLES:
        op.execute(
            f"CREATE POLICY metrics_scope ON {table} FOR SELECT "
            "USING (current_setting('app.system_scope', true) = 'metrics')"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP POLICY metrics_scope ON {table}")
