"""The relay's claim and a recompute's completion read the work in flight, not a tenant's history.

Both asked about a tenant's unfinished recompute rows through indexes that hold every recompute
row the tenant ever had: the claim's "is a recompute in flight?" walked ``(tenant_id,
dispatched_at)`` over all of the tenant's dispatched rows, once per pending row, and the completion
walked ``(tenant_id, id)`` over all rows up to its id. Both grew with the outbox: over a 75-second
run rising to 800 requests a second they read 29 million index entries, and the 800 rps step
failed. Two partial indexes hold only what those questions are about: the unfinished rows by
tenant, and the recent dispatches by time (``app.outbox.relay.CLAIM_SQL`` asks once per pass
which tenants are busy).

The outbox and the broker's message table are queues: every row is written, updated twice (or
consumed) and never read again, and until a vacuum each dead row version stays in the partial
indexes the relay and the broker's poll read many times a second. The default trigger (a fifth of
the table dead) lets that grow with the table; these two vacuum after a fixed number of dead rows,
without cost-based pauses.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


QUEUE_TABLES = ("outbox", "kombu_message")
QUEUE_VACUUM = {
    "autovacuum_vacuum_scale_factor": "0.0",
    "autovacuum_vacuum_threshold": "5000",
    "autovacuum_vacuum_cost_delay": "0",
    "autovacuum_analyze_scale_factor": "0.02",
}
NEW_INDEXES = {
    "outbox_recompute_unfinished": "ON outbox (tenant_id, id) "
    "WHERE kind = 'attribution_recompute' AND completed_at IS NULL",
    "outbox_recompute_recent": "ON outbox (dispatched_at) "
    "WHERE kind = 'attribution_recompute' AND dispatched_at IS NOT NULL",
}


def upgrade() -> None:
    for table in QUEUE_TABLES:
        settings = ", ".join(f"{name} = {value}" for name, value in QUEUE_VACUUM.items())
        op.execute(f"ALTER TABLE {table} SET ({settings})")
    for name, definition in NEW_INDEXES.items():
        op.execute(f"CREATE INDEX {name} {definition}")
    op.execute("DROP INDEX outbox_recompute_dispatched")


def downgrade() -> None:
    for table in QUEUE_TABLES:
        op.execute(f"ALTER TABLE {table} RESET ({', '.join(QUEUE_VACUUM)})")
    op.execute(  # the index this revision replaced, as 0008 created it
        "CREATE INDEX outbox_recompute_dispatched ON outbox (tenant_id, dispatched_at) "
        "WHERE kind = 'attribution_recompute'"
    )
    for name in NEW_INDEXES:
        op.execute(f"DROP INDEX {name}")
