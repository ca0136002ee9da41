"""The LLM boundary's calls carry their own signed context: one statement per step, not two.

Each step of a provider call (``llm_route_admit``, ``llm_settle``, ``llm_fail``; ``llm_admit`` for a
caller with its own model) was two statements: the tenant context's ``set_config`` and the call.
They now take the signed context token as their last argument (``p_context``, NULL: the
transaction's own, as before) and ``app_required_context(p_context)`` sets it before verifying it,
as the webhook intake's functions have done since 0010. The verification is unchanged: a token
that does not verify is refused whichever way it arrived.

And the ledger row is found by its primary key alone in ``llm_settle``, ``llm_fail`` and
``llm_finish``: their ownership check (the verified tenant and user) is now a row comparison no
index serves. As equalities, the plan PL/pgSQL cached while ``llm_api_calls`` was small could use
the (tenant_id, request_id, endpoint) index with only its tenant column, and then read every call
of the tenant to settle one: settle's time grew with each call (``python -m
scripts.bench.settle_growth``, and its ``--ownership equality`` control; docs/perf).

The current texts are in backend/sql; this revision applies its own frozen copies (its downgrade
the texts they replace: 0026's ``app_required_context`` and ``llm_finish``, 0027's ``llm_route_admit``
and ``llm_admit``, 0029's ``llm_settle`` and ``llm_fail``).

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


FINISH = "llm_finish(uuid, text, uuid, text, text, text, boolean, boolean, jsonb)"  # same signature
STEP = {FINISH: frozen_sql(__file__, "0030_llm_finish.sql")}
STEP_BEFORE = {FINISH: frozen_sql(__file__, "0030_downgrade_llm_finish.sql")}


def install(functions: dict[str, str], required: str, step: dict[str, str]) -> None:
    install_system_functions({**functions, **step})
    for helper in (required, *step):  # app_system's own helpers: only its functions call them
        op.execute(f"REVOKE EXECUTE ON FUNCTION {helper} FROM {RUNTIME_ROLE}")


def upgrade() -> None:
    drop_functions(op.execute, CHANGED_BEFORE)
    install(CHANGED, REQUIRED, STEP)


def downgrade() -> None:
    drop_functions(op.execute, CHANGED)
    install(CHANGED_BEFORE, REQUIRED_BEFORE, STEP_BEFORE)
