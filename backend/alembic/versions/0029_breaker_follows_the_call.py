"""The LLM breaker moves only for a call of the caller's own, and only the breaker of that call's model.

``llm_fail`` counted a failure against whichever provider and model the session named, before it
looked for the call: any tenant's session could open the breaker every tenant shares (threshold 1)
without a call of its own. ``llm_settle`` closed a named breaker the same way. Both now take the
provider and model from the call's ledger row, and change the breaker only when that row is the
caller's pending call; their provider and model parameters are gone. A success no longer closes an
open breaker: only its half-open trial's does (a call admitted before the breaker opened, settled
after, reopened the provider to every tenant). And the runtime's own
INSERT and UPDATE on ``llm_breaker_state`` (from 0005, before the boundary's writes moved into
app_system's functions in 0026) are revoked: with them any session could open or close it directly.

The current texts are in backend/sql; this revision applies its own frozen copies (its downgrade
the texts 0026 and 0027 applied).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import drop_functions, frozen_sql, install_system_functions
from app.core.roles import READ_WRITE_GROUP

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

FAIL = "llm_fail(uuid, text, integer)"
SETTLE = "llm_settle(uuid, numeric, numeric, boolean, jsonb, jsonb, text, jsonb, integer, integer, numeric)"
FAIL_BEFORE = "llm_fail(uuid, text, text, text, integer)"
SETTLE_BEFORE = (
    "llm_settle(uuid, numeric, numeric, text, text, boolean, jsonb, jsonb, text, jsonb, integer, integer, numeric)"
)
CHANGED = {
    FAIL: frozen_sql(__file__, "0029_llm_fail.sql"),
    SETTLE: frozen_sql(__file__, "0029_llm_settle.sql"),
}
CHANGED_BEFORE = {
    FAIL_BEFORE: frozen_sql(__file__, "0029_downgrade_llm_fail.sql"),
    SETTLE_BEFORE: frozen_sql(__file__, "0029_downgrade_llm_settle.sql"),
}


def upgrade() -> None:
    # A new signature is a new function: the old ones go, so no session can still name a breaker.
    drop_functions(op.execute, CHANGED_BEFORE)
    install_system_functions(CHANGED)
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON llm_breaker_state FROM {READ_WRITE_GROUP}")


def downgrade() -> None:
    op.execute(f"GRANT INSERT, UPDATE ON llm_breaker_state TO {READ_WRITE_GROUP}")
    drop_functions(op.execute, CHANGED)
    install_system_functions(CHANGED_BEFORE)
