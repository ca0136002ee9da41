"""Two lookups on every LLM call could use no index, so each scanned rows that only grow.

- The cache lookup compared ``llm_response_cache.cache_key`` (char(64)) with a text value. The
  comparison casts the column to text, so the primary key (tenant_id, cache_key) answered only the
  tenant, and a tenant's every cached answer was read on each call (1.4 ms at 900 entries here).
  The column becomes text, which is what every caller already sends.
- Returning a reservation finds it by call id, and nothing indexed call_id: each settle, cache hit
  and failure scanned every tenant's reservations. The index is unique because a call holds at most
  one reservation.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE llm_response_cache ALTER COLUMN cache_key TYPE text")
    op.execute("CREATE UNIQUE INDEX llm_budget_reservations_by_call ON llm_budget_reservations (call_id)")


def downgrade() -> None:
    op.execute("DROP INDEX llm_budget_reservations_by_call")
    op.execute("ALTER TABLE llm_response_cache ALTER COLUMN cache_key TYPE char(64)")
