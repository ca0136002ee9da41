"""What the operator CLI (``python -m scripts.ops.tenants``, as ops_admin) needs: create tenants,
issue and revoke API keys, rotate webhook secrets, set platform keys. ops_admin bypasses RLS (it
serves every tenant). It reads no webhook secret; it may read the sealed platform keys because an
upsert (INSERT ... ON CONFLICT DO UPDATE) reads the column it replaces, and the issue's rule is "no
role but the owner and ops_admin": a sealed value is useless without the key ring anyway.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from app.core.roles import OPS_ADMIN_ROLE

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

GRANTS = {
    "tenants": "SELECT, INSERT",
    "api_keys": "SELECT, INSERT, UPDATE (revoked_at)",
    "webhook_secrets": "SELECT (id, tenant_id, created_at, expires_at), INSERT, UPDATE (expires_at)",
    "platform_connections": "SELECT, INSERT, UPDATE (api_key_sealed)",
}


def upgrade() -> None:
    for table, privileges in GRANTS.items():
        op.execute(f"GRANT {privileges} ON {table} TO {OPS_ADMIN_ROLE}")


def downgrade() -> None:
    for table in GRANTS:
        op.execute(f"REVOKE ALL ON {table} FROM {OPS_ADMIN_ROLE}")
