"""The LLM boundary does less per call: one context verification per admission, no extra row lock in settle.

``llm_route_admit`` verified the tenant context and then called ``llm_admit``, which verified it
again. The admission's steps now live in ``llm_admit_for``, told the tenant and user like
``llm_release`` and ``llm_finish`` (app_system's alone, no EXECUTE for the runtime);
``llm_route_admit`` calls it with the ids it verified, and ``llm_admit`` stays the runtime's entry
point for a caller that picked its own model (verify, then ``llm_admit_for``). ``llm_settle``
finished the call's row after locking it with a separate ``SELECT ... FOR UPDATE``; it now finishes
the row first (the update takes the lock and tells whether the call was the caller's and pending)
and writes the distillation records under ids it chose beforehand. Same behaviour, two statements
and one HMAC verification fewer per provider call.

The current texts are in backend/sql; this revision applies its own frozen copies (its downgrade
the texts 0026 applied).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import drop_functions, frozen_sql, install_system_functions
from app.core.roles import RUNTIME_ROLE

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

ADMIT_FOR = (
    "llm_admit_for(uuid, text, text, text, numeric, text, text, text, text, text, numeric, numeric, boolean, "
    "double precision)"
)
ROUTE_ADMIT = (
    "llm_route_admit(text, text, numeric, numeric, numeric[], text[], text[], text[], numeric[], text, text, numeric, "
    "boolean, double precision)"
)
ADMIT = "llm_admit(text, text, numeric, text, text, text, text, text, numeric, numeric, boolean, double precision)"
SETTLE = "llm_settle(uuid, numeric, numeric, text, text, boolean, jsonb, jsonb, text, jsonb, integer, integer, numeric)"
CHANGED = {
    ROUTE_ADMIT: frozen_sql(__file__, "0027_llm_route_admit.sql"),
    ADMIT: frozen_sql(__file__, "0027_llm_admit.sql"),
    SETTLE: frozen_sql(__file__, "0027_llm_settle.sql"),
}
CHANGED_BEFORE = {
    ROUTE_ADMIT: frozen_sql(__file__, "0027_downgrade_llm_route_admit.sql"),
    ADMIT: frozen_sql(__file__, "0027_downgrade_llm_admit.sql"),
    SETTLE: frozen_sql(__file__, "0027_downgrade_llm_settle.sql"),
}
STEPS = {ADMIT_FOR: frozen_sql(__file__, "0027_llm_admit_for.sql")}


def upgrade() -> None:
    # The step first: the new llm_admit and llm_route_admit call it. CREATE OR REPLACE keeps the
    # changed functions' owner and grants; install_system_functions sets them again all the same.
    install_system_functions(STEPS)
    for signature in STEPS:  # told the tenant and user by its callers: never the runtime's
        op.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM {RUNTIME_ROLE}")
    install_system_functions(CHANGED)


def downgrade() -> None:
    install_system_functions(CHANGED_BEFORE)
    drop_functions(op.execute, STEPS)
