"""Limits and switches belong to operators: the runtime may record usage, never widen what it obeys.

Before, app_user could raise its own monthly limit, insert next month's period with any limit (which
``llm_route_admit`` then kept), delete its hourly shutoff and clear the kill switch. Now:

- ``llm_limits`` (one row) holds the monthly budget and hourly limit every new period and hour is
  measured against; the runtime reads it, ``ops_admin`` changes it;
- the kill switch is read-only for the runtime; ``ops_admin`` flips it;
- a budget period's limit is not the runtime's to update (column privileges); a period the runtime
  creates gets the operators' limit and starts empty, whatever the insert said (trigger);
- an hour's spend never goes down and its shutoff never lifts, by the runtime's hand; the shutoff is
  set from the operators' hourly limit, whatever limit the caller passed (trigger);
- the runtime deletes neither periods nor shutoffs.

"The runtime" is any member of app_rw (app_user). ``ops_admin`` (LOGIN, BYPASSRLS, never used by api
or worker) and the schema owner are not members, so the triggers leave them alone.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from app.core.roles import OPS_ADMIN_ROLE, OPS_READER_ROLE, READ_ONLY_GROUP, READ_WRITE_GROUP

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

DEFAULT_MONTHLY_BUDGET_CENTS = 2500  # the settings' defaults when this revision was written
DEFAULT_HOURLY_LIMIT_CENTS = 500

RUNTIME = f"pg_has_role(current_user, '{READ_WRITE_GROUP}', 'MEMBER')"


def guard(name: str, body: str) -> str:
    """A trigger function that leaves operators alone and holds the runtime to ``body``."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT {RUNTIME} THEN
        RETURN NEW;
    END IF;{body}
    RETURN NEW;
END $$
"""


PERIOD_GUARD = guard(
    "llm_budget_period_guard",
    """
    IF TG_OP = 'INSERT' THEN
        NEW.limit_cents := (SELECT monthly_budget_cents FROM llm_limits WHERE id = 1);
        NEW.spent_cents := 0;
        NEW.reserved_cents := 0;
    ELSIF NEW.spent_cents < OLD.spent_cents THEN
        RAISE EXCEPTION 'spend is recorded, never taken back' USING ERRCODE = 'insufficient_privilege';
    END IF;""",
)
SHUTOFF_GUARD = guard(
    "llm_hourly_shutoff_guard",
    """
    IF TG_OP = 'UPDATE' AND (NEW.spent_cents < OLD.spent_cents OR (OLD.shut_off AND NOT NEW.shut_off)) THEN
        RAISE EXCEPTION 'an hour''s spend and shutoff only move toward the limit'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.shut_off := NEW.shut_off OR NEW.spent_cents >= (SELECT hourly_limit_cents FROM llm_limits WHERE id = 1);""",
)
GUARDS = {
    "llm_budget_periods": ("llm_budget_period_guard", PERIOD_GUARD),
    "llm_hourly_shutoff": ("llm_hourly_shutoff_guard", SHUTOFF_GUARD),
}


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE llm_limits (
            id                    smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            monthly_budget_cents  numeric(14, 4) NOT NULL CHECK (monthly_budget_cents >= 0),
            hourly_limit_cents    numeric(14, 4) NOT NULL CHECK (hourly_limit_cents >= 0),
            updated_at            timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        f"INSERT INTO llm_limits (monthly_budget_cents, hourly_limit_cents) "
        f"VALUES ({DEFAULT_MONTHLY_BUDGET_CENTS}, {DEFAULT_HOURLY_LIMIT_CENTS})"
    )
    op.execute(f"GRANT SELECT ON llm_limits TO {READ_WRITE_GROUP}, {READ_ONLY_GROUP}, {OPS_READER_ROLE}")
    op.execute(f"GRANT SELECT, UPDATE ON llm_limits, llm_kill_switch TO {OPS_ADMIN_ROLE}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON llm_kill_switch FROM {READ_WRITE_GROUP}")
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON llm_budget_periods FROM {READ_WRITE_GROUP}")
    op.execute(f"GRANT UPDATE (reserved_cents, spent_cents) ON llm_budget_periods TO {READ_WRITE_GROUP}")
    op.execute(f"REVOKE DELETE, TRUNCATE ON llm_hourly_shutoff FROM {READ_WRITE_GROUP}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON llm_budget_periods, llm_hourly_shutoff TO {OPS_ADMIN_ROLE}")
    for table, (function, body) in GUARDS.items():
        op.execute(body)
        op.execute(f"REVOKE ALL ON FUNCTION {function}() FROM PUBLIC")
        op.execute(
            f"CREATE TRIGGER {function} BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {function}()"
        )


def downgrade() -> None:
    for table, (function, _) in GUARDS.items():
        op.execute(f"DROP TRIGGER {function} ON {table}")
        op.execute(f"DROP FUNCTION {function}()")
    op.execute(f"REVOKE ALL ON llm_budget_periods, llm_hourly_shutoff, llm_kill_switch FROM {OPS_ADMIN_ROLE}")
    op.execute(f"REVOKE UPDATE (reserved_cents, spent_cents) ON llm_budget_periods FROM {READ_WRITE_GROUP}")
    op.execute(f"GRANT UPDATE, DELETE ON llm_budget_periods, llm_hourly_shutoff TO {READ_WRITE_GROUP}")
    op.execute(f"GRANT INSERT, UPDATE, DELETE ON llm_kill_switch TO {READ_WRITE_GROUP}")
    op.execute("DROP TABLE llm_limits")
