"""Find a tenant's newest recompute outbox row through an index, not a scan of everyone's outbox.

``llm_admit`` hashes the tenant's data watermark (its newest recompute outbox id) into the cache
key, and a recompute completes its tenant's rows up to an id. Both filtered on the tenant only
through row-level security, whose policy (tenant OR relay scope) no index can answer: the planner
walked the outbox's primary key backwards until it met one of the tenant's rows. For a tenant with
no recent events that is the whole outbox, on every LLM call (145 ms at 200,000 rows here).
Both queries now name the tenant, and an index on (tenant_id, id) answers them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import frozen_sql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX outbox_recompute_by_tenant ON outbox (tenant_id, id) WHERE kind = 'attribution_recompute'")
    op.execute(frozen_sql(__file__, "0012_llm_admit.sql"))  # 0009's, naming the tenant


def downgrade() -> None:
    op.execute(frozen_sql(__file__, "0012_downgrade_llm_admit.sql"))  # as 0009 created it
    op.execute("DROP INDEX outbox_recompute_by_tenant")
