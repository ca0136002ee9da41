"""The LLM boundary verifies the tenant context once per call, not once per policy per statement.

Row-level security verified the signed context (0024) in every policy expression of every statement
the boundary's functions ran: about thirty HMAC verifications per provider call, a third of the
boundary's database time. Now the four functions the runtime calls (``llm_route_admit``,
``llm_admit``, ``llm_settle``, ``llm_fail``) are app_system's SECURITY DEFINER functions
(search_path pinned, EXECUTE for app_user alone): each verifies once through
``app_required_context()`` (an error without a valid context, as row-level security's refusal was)
and names that tenant and user in every statement it runs, so a call id of another tenant or user
finds no row; hours and months are UTC's, named so, whatever the session's TimeZone. Their steps
``llm_release`` and ``llm_finish`` are told the tenant and user (a new signature) and are
app_system's alone. app_system gets the grants those statements need, none on a limit column, and a
policy to write the LLM tables. The limit guards treat app_system as the runtime it acts for (a new
period still gets the operators' limit) and read ``llm_limits`` schema-qualified under a pinned
search_path.

The current texts are in backend/sql; this revision applies its own frozen copies (its downgrade
the texts 0014 and 0019 left).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import drop_functions, frozen_sql, install_functions, install_system_functions
from app.core.roles import RUNTIME_ROLE, SYSTEM_ROLE

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

ROUTE_ADMIT = (
    "llm_route_admit(text, text, numeric, numeric, numeric[], text[], text[], text[], numeric[], text, text, numeric, "
    "boolean, double precision)"
)
ADMIT = "llm_admit(text, text, numeric, text, text, text, text, text, numeric, numeric, boolean, double precision)"
SETTLE = "llm_settle(uuid, numeric, numeric, text, text, boolean, jsonb, jsonb, text, jsonb, integer, integer, numeric)"
FAIL = "llm_fail(uuid, text, text, text, integer)"
RELEASE = "llm_release(uuid, text, uuid, numeric)"  # the tenant and user first: its callers verified them
FINISH = "llm_finish(uuid, text, uuid, text, text, text, boolean, boolean, jsonb)"
RELEASE_BEFORE = "llm_release(uuid, numeric)"
FINISH_BEFORE = "llm_finish(uuid, text, text, text, boolean, boolean, jsonb)"
BOUNDARY = {
    ROUTE_ADMIT: frozen_sql(__file__, "0026_llm_route_admit.sql"),
    ADMIT: frozen_sql(__file__, "0026_llm_admit.sql"),
    SETTLE: frozen_sql(__file__, "0026_llm_settle.sql"),
    FAIL: frozen_sql(__file__, "0026_llm_fail.sql"),
    RELEASE: frozen_sql(__file__, "0026_llm_release.sql"),
    FINISH: frozen_sql(__file__, "0026_llm_finish.sql"),
}
BOUNDARY_BEFORE = {
    ROUTE_ADMIT: frozen_sql(__file__, "0026_downgrade_llm_route_admit.sql"),
    ADMIT: frozen_sql(__file__, "0026_downgrade_llm_admit.sql"),
    SETTLE: frozen_sql(__file__, "0026_downgrade_llm_settle.sql"),
    FAIL: frozen_sql(__file__, "0026_downgrade_llm_fail.sql"),
    RELEASE_BEFORE: frozen_sql(__file__, "0026_downgrade_llm_release.sql"),
    FINISH_BEFORE: frozen_sql(__file__, "0026_downgrade_llm_finish.sql"),
}
REQUIRED_CONTEXT = {"app_required_context()": frozen_sql(__file__, "0026_app_required_context.sql")}
GUARDS = (
    frozen_sql(__file__, "0026_llm_budget_period_guard.sql"),
    frozen_sql(__file__, "0026_llm_hourly_shutoff_guard.sql"),
)
GUARDS_BEFORE = (
    frozen_sql(__file__, "0026_downgrade_llm_budget_period_guard.sql"),
    frozen_sql(__file__, "0026_downgrade_llm_hourly_shutoff_guard.sql"),
)

# What the functions' statements need as app_system, beyond the SELECTs it has for the metrics.
GRANTS = (
    "INSERT, UPDATE ON llm_api_calls",
    "INSERT, UPDATE (spent_cents, reserved_cents) ON llm_budget_periods",
    "SELECT, INSERT, UPDATE (status) ON llm_budget_reservations",
    "INSERT, UPDATE (spent_cents, shut_off) ON llm_hourly_shutoff",
    "SELECT, INSERT ON llm_distillation_records",
    "INSERT ON llm_response_cache",
    "SELECT, INSERT, UPDATE ON llm_breaker_state",
    "SELECT ON llm_kill_switch",
    "SELECT ON llm_limits",
)
READ_BEFORE = ("llm_api_calls", "llm_budget_periods", "llm_hourly_shutoff")  # a SELECT policy for app_system
NO_POLICY_BEFORE = ("llm_budget_reservations", "llm_distillation_records")


def upgrade() -> None:
    for grant in GRANTS:
        op.execute(f"GRANT {grant} TO {SYSTEM_ROLE}")
    for table in READ_BEFORE:
        op.execute(f"DROP POLICY system_role ON {table}")
    for table in READ_BEFORE + NO_POLICY_BEFORE:
        op.execute(f"CREATE POLICY system_role ON {table} TO {SYSTEM_ROLE} USING (true) WITH CHECK (true)")
    for guard in GUARDS:
        op.execute(guard)
    drop_functions(op.execute, BOUNDARY_BEFORE)
    install_system_functions(REQUIRED_CONTEXT)
    for signature in REQUIRED_CONTEXT:  # app_system's own helper: only its functions call it
        op.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM {RUNTIME_ROLE}")
    install_system_functions(BOUNDARY)
    for signature in (RELEASE, FINISH):  # steps of the others, told the tenant and user: never the runtime's
        op.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM {RUNTIME_ROLE}")


def downgrade() -> None:
    drop_functions(op.execute, BOUNDARY)
    drop_functions(op.execute, REQUIRED_CONTEXT)
    install_functions(op.execute, BOUNDARY_BEFORE)
    for guard in GUARDS_BEFORE:
        op.execute(guard)
    for table in READ_BEFORE + NO_POLICY_BEFORE:
        op.execute(f"DROP POLICY system_role ON {table}")
    for table in READ_BEFORE:
        op.execute(f"CREATE POLICY system_role ON {table} FOR SELECT TO {SYSTEM_ROLE} USING (true)")
    for grant in GRANTS:
        op.execute(f"REVOKE {grant} FROM {SYSTEM_ROLE}")
