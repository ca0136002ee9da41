"""The webhook's request id follows it into the recompute outbox row (issue 18's correlation id).

``webhook_intake_event`` takes one more argument, the request id the api answered with, and writes
it in the payload of the outbox row it adds; the relay gathers the ids of the rows one recompute
covers, and the recompute task's log lines name them. A new signature: the old function is dropped
(the api that calls it is deployed with this revision).

The current text is in backend/sql; this revision applies its own frozen copies (the downgrade's is
the text 0024 applied).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import drop_functions, frozen_sql, install_functions

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

ARGS = "text, text, text, text, text, text, text, timestamptz, bigint, text, jsonb"
INTAKE = {f"webhook_intake_event({ARGS}, text)": frozen_sql(__file__, "0025_webhook_intake_event.sql")}
INTAKE_BEFORE = {f"webhook_intake_event({ARGS})": frozen_sql(__file__, "0025_downgrade_webhook_intake_event.sql")}


def upgrade() -> None:
    drop_functions(op.execute, INTAKE_BEFORE)
    install_functions(op.execute, INTAKE)


def downgrade() -> None:
    drop_functions(op.execute, INTAKE)
    install_functions(op.execute, INTAKE_BEFORE)
