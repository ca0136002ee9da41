"""Webhook secrets tell the api when they change, so it can cache them: one round trip per webhook.

The intake read its tenant's secrets from the database on every webhook, a round trip as costly as
storing the event. The api now keeps them per tenant (``app.webhooks.secret_cache``) and drops a
tenant's entry when the database says its secrets changed:

- ``webhook_secrets_changed()``, a trigger function on ``webhook_secrets`` (every row inserted,
  updated or deleted, and a TRUNCATE), NOTIFYs channel ``webhook_secrets_changed`` with the tenant
  id ('*' for a TRUNCATE). PostgreSQL delivers it at commit, never for a rollback.
- ``webhook_intake_timed_secrets`` returns each secret with its seconds left by the database's clock
  (NULL: no end of grace), so a cached secret still expires on time. ``webhook_intake_secrets``
  stays as it was: an api older than this revision still calls it during a rolling deploy.

The trigger function runs only as a trigger: nobody is granted EXECUTE on it.
The current texts are in backend/sql/functions; this revision applies frozen copies.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import drop_functions, frozen_sql, install_functions

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

TIMED = {"webhook_intake_timed_secrets(text)": frozen_sql(__file__, "0031_webhook_intake_timed_secrets.sql")}
CHANGED = "webhook_secrets_changed()"
CHANGED_SQL = frozen_sql(__file__, "0031_webhook_secrets_changed.sql")
TRIGGERS = {
    "webhook_secrets_changed": "AFTER INSERT OR UPDATE OR DELETE ON webhook_secrets FOR EACH ROW",
    "webhook_secrets_truncated": "AFTER TRUNCATE ON webhook_secrets FOR EACH STATEMENT",
}


def upgrade() -> None:
    install_functions(op.execute, TIMED)
    op.execute(CHANGED_SQL)
    op.execute(f"REVOKE ALL ON FUNCTION {CHANGED} FROM PUBLIC")
    for name, when in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION {CHANGED}")


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON webhook_secrets")
    op.execute(f"DROP FUNCTION {CHANGED}")
    drop_functions(op.execute, TIMED)
