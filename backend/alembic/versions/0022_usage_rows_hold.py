"""Usage rows the runtime writes cannot be bent around the limits (found by review after 0019):

- an hour's shutoff row could be moved to another hour (UPDATE of ``hour_start``) or created with a
  negative spend for an hour to come: the runtime now updates only ``spent_cents`` and ``shut_off``,
  and spend is never negative;
- a held reservation's amount could be rewritten to zero before it was returned, so the spend it
  covered was never recorded: the runtime now updates only a reservation's ``status``, and deletes none.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from app.core.roles import READ_WRITE_GROUP

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(f"REVOKE UPDATE ON llm_hourly_shutoff FROM {READ_WRITE_GROUP}")
    op.execute(f"GRANT UPDATE (spent_cents, shut_off) ON llm_hourly_shutoff TO {READ_WRITE_GROUP}")
    op.execute("ALTER TABLE llm_hourly_shutoff ADD CONSTRAINT llm_hourly_shutoff_spend_check CHECK (spent_cents >= 0)")
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON llm_budget_reservations FROM {READ_WRITE_GROUP}")
    op.execute(f"GRANT UPDATE (status) ON llm_budget_reservations TO {READ_WRITE_GROUP}")


def downgrade() -> None:
    op.execute(f"REVOKE UPDATE (status) ON llm_budget_reservations FROM {READ_WRITE_GROUP}")
    op.execute(f"GRANT UPDATE, DELETE ON llm_budget_reservations TO {READ_WRITE_GROUP}")
    op.execute("ALTER TABLE llm_hourly_shutoff DROP CONSTRAINT llm_hourly_shutoff_spend_check")
    op.execute(f"REVOKE UPDATE (spent_cents, shut_off) ON llm_hourly_shutoff FROM {READ_WRITE_GROUP}")
    op.execute(f"GRANT UPDATE ON llm_hourly_shutoff TO {READ_WRITE_GROUP}")
