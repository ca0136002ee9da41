"""Index recompute dispatch times, so the relay can space a tenant's recomputes cheaply.

The relay sends a tenant's next attribution recompute only when none is in flight and none was
sent within the coalescing window; this index answers "sent recently?" without scanning the outbox.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX outbox_recompute_dispatched ON outbox (tenant_id, dispatched_at) "
        "WHERE kind = 'attribution_recompute'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX outbox_recompute_dispatched")
