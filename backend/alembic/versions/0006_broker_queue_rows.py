"""Create the broker's queue rows up front.

kombu inserts a queue's row on first use and tolerates only OperationalError; when the api and the
worker start against a fresh database together, both insert 'housekeeping' and the loser dies with
a UniqueViolation. With the rows present, kombu only ever reads them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

QUEUES = ("housekeeping", "maintenance", "llm", "attribution")  # app.worker.celery_app.QUEUES at this revision


def upgrade() -> None:
    values = ", ".join(f"('{name}')" for name in QUEUES)
    op.execute(f"INSERT INTO kombu_queue (name) VALUES {values} ON CONFLICT (name) DO NOTHING")


def downgrade() -> None:
    pass  # the rows are harmless, and kombu would recreate them anyway
