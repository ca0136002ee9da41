"""A duplicate webhook finds its first delivery through an index, not a scan of every tenant's events.

``webhook_intake_event`` looked the first delivery up by webhook id or platform event id and left the
tenant to row-level security. The events table's policy admits the metrics scope too (tenant OR
scope), which no index can answer, so every replay and collision read the whole table: at 800
requests a second with the storm mix that is some 70 sequential scans a second, each longer than
the last. The lookup now names the tenant, and the two unique indexes that detected the duplicate
answer it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from app.core.roles import or_replace, revision_module

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

MATCH = "e.webhook_id = p_webhook_id OR (e.platform = p_platform AND e.external_event_id = p_external_event_id)"
UNSCOPED = f"WHERE {MATCH}"
SCOPED = f"WHERE e.tenant_id = p_tenant AND ({MATCH})"


def intake_event(scoped: bool) -> str:
    """webhook_intake_event as 0010 created it, with or without the tenant named in its lookup."""
    created = or_replace(str(revision_module("0010_webhook_intake_functions.py").EVENT))
    assert UNSCOPED in created, "webhook_intake_event no longer holds the lookup this revision rewrites"
    return created.replace(UNSCOPED, SCOPED) if scoped else created


def upgrade() -> None:
    op.execute(intake_event(scoped=True))


def downgrade() -> None:
    op.execute(intake_event(scoped=False))
