"""Webhook intake as server-side functions: one call reads a tenant's secrets, one stores an event
with its outbox row (or a dead letter).

The intake made five round trips per webhook through SQLAlchemy (begin, tenant context, secrets,
insert, commit) and spent most of the api's time in the driver layers. Each function sets the
tenant context itself, transaction-local, and a call outside an explicit transaction is its own
transaction: the context ends with the call, so a pooled connection never carries it further.
They run as the caller (SECURITY INVOKER), so row-level security applies to every row they touch.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import drop_functions, frozen_sql, install_functions

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SECRETS = frozen_sql(__file__, "0010_webhook_intake_secrets.sql")

# A duplicate (same webhook id, or same platform event id) stores nothing and returns the first
# delivery's event id.
EVENT = frozen_sql(__file__, "0010_webhook_intake_event.sql")

DEAD_LETTER = frozen_sql(__file__, "0010_webhook_intake_dead_letter.sql")

FUNCTIONS = {
    "webhook_intake_secrets(uuid)": SECRETS,
    "webhook_intake_event(uuid, text, text, text, text, text, text, timestamptz, bigint, text, jsonb)": EVENT,
    "webhook_intake_dead_letter(uuid, text, text, text, jsonb, text, integer, jsonb)": DEAD_LETTER,
}


def upgrade() -> None:
    install_functions(op.execute, FUNCTIONS)


def downgrade() -> None:
    drop_functions(op.execute, FUNCTIONS)
