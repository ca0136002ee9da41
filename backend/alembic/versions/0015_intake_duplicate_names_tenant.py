"""A duplicate webhook finds its first delivery through an index, not a scan of every tenant's events.

``webhook_intake_event`` looked the first delivery up by webhook id or platform event id and left the
tenant to row-level security. The events table's policy admits the metrics scope too (tenant OR
scope), which no index can answer, so every replay and collision read the whole table: at 800
requests a second with the storm mix that is some 70 sequential scans a second, each longer than
the last. The lookup now names the tenant, and the two unique indexes that detected the duplicate
answer it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import frozen_sql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(frozen_sql(__file__, "0015_webhook_intake_event.sql"))  # 0010's, its lookup naming the tenant


def downgrade() -> None:
    op.execute(frozen_sql(__file__, "0015_downgrade_webhook_intake_event.sql"))  # as 0010 created it
