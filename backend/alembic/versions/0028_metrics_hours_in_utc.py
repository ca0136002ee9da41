"""/metrics keys the LLM budget's month and the shutoff's hour in UTC, as the boundary writes them.

``metrics_budget`` and ``metrics_llm_shutoffs`` truncated ``now()`` in the session's TimeZone. On a
server in UTC they agreed with the LLM boundary, which names UTC since 0026; a session in a zone off
the hour by minutes (or a server configured in one) read another hour's shutoffs, and near a month's
end another month's budget. Metrics only: no limit reads these functions.

The current texts are in backend/sql; this revision applies its own frozen copies (its downgrade
the texts it replaced).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from __future__ import annotations

from app.core.ddl import frozen_sql, install_system_functions

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

CHANGED = {
    "metrics_budget()": frozen_sql(__file__, "0028_metrics_budget.sql"),
    "metrics_llm_shutoffs()": frozen_sql(__file__, "0028_metrics_llm_shutoffs.sql"),
}
CHANGED_BEFORE = {
    "metrics_budget()": frozen_sql(__file__, "0028_downgrade_metrics_budget.sql"),
    "metrics_llm_shutoffs()": frozen_sql(__file__, "0028_downgrade_metrics_llm_shutoffs.sql"),
}


def upgrade() -> None:
    install_system_functions(CHANGED)


def downgrade() -> None:
    install_system_functions(CHANGED_BEFORE)
