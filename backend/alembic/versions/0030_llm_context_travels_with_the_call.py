"""The LLM boundary's calls carry their own signed context: one statement per step, not two.

Each step of a provider call (``llm_route_admit``, ``llm_settle``, ``llm_fail``; ``llm_admit`` for a
caller with its own model) was two statements: the tenant context's ``set_config`` and the call.
They now take the signed context token as their last argument (``p_context``, NULL: the
transaction's own, as before) and ``app_required_context(p_context)`` sets it before verifying it,
as the webhook intake's functions have done since 0010. The verification is unchanged: a token
that does not verify is refused whichever way it arrived.

The current texts are in backend/sql; this revision applies its own frozen copies (its downgrade
the texts 0027 and 0029 applied).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import drop_functions, frozen_sql, install_system_functions
from app.core.roles import RUNTIME_ROLE

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

REQUIRED = "app_required_context(text)"
REQUIRED_BEFORE = "app_required_context()"
ROUTE_ADMIT = (
    "llm_route_admit(text, text, numeric, numeric, numeric[], text[], text[], text[], numeric[], text, text, numeric, "
    "boolean, double precision"
)
ADMIT = "llm_admit(text, text, numeric, text, text, text, text, text, numeric, numeric, boolean, double precision"
SETTLE = "llm_settle(uuid, numeric, numeric, boolean, jsonb, jsonb, text, jsonb, integer, integer, numeric"
FAIL = "llm_fail(uuid, text, integer"
CHANGED = {  # each with the context token as its last argument
    REQUIRED: frozen_sql(__file__, "0030_app_required_context.sql"),
    ROUTE_ADMIT + ", text)": frozen_sql(__file__, "0030_llm_route_admit.sql"),
    ADMIT + ", text)": frozen_sql(__file__, "0030_llm_admit.sql"),
    SETTLE + ", text)": frozen_sql(__file__, "0030_llm_settle.sql"),
    FAIL + ", text)": frozen_sql(__file__, "0030_llm_fail.sql"),
}
CHANGED_BEFORE = {
    REQUIRED_BEFORE: frozen_sql(__file__, "0030_downgrade_app_required_context.sql"),
    ROUTE_ADMIT + ")": frozen_sql(__file__, "0030_downgrade_llm_route_admit.sql"),
    ADMIT + ")": frozen_sql(__file__, "0030_downgrade_llm_admit.sql"),
    SETTLE + ")": frozen_sql(__file__, "0030_downgrade_llm_settle.sql"),
    FAIL + ")": frozen_sql(__file__, "0030_downgrade_llm_fail.sql"),
}


def install(functions: dict[str, str], required: str) -> None:
    install_system_functions(functions)
    op.execute(f"REVOKE EXECUTE ON FUNCTION {required} FROM {RUNTIME_ROLE}")  # app_system's own helper


def upgrade() -> None:
    drop_functions(op.execute, CHANGED_BEFORE)
    install(CHANGED, REQUIRED)


def downgrade() -> None:
    drop_functions(op.execute, CHANGED)
    install(CHANGED_BEFORE, REQUIRED_BEFORE)
