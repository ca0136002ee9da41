"""The tenant context is a token the runtime role cannot forge (issue 17's last gap).

Until now every policy keyed on ``app.current_tenant_id`` / ``app.current_user_id``, settings any
``app_user`` session may set: a SQL injection or a leaked runtime DSN could name another tenant and
read or write its rows. Now:

- the context is one setting, ``app.tenant_context``: a token the api and worker sign with a key
  derived from the credential sealing ring (``app.core.tenancy``); ``tenant_context_keys`` holds, per
  key id, the HMAC's padded keys, readable by app_system alone (the schema owner writes it after
  every upgrade from the environment's ring: ``sync_context_keys`` in env.py);
- ``app_current_tenant()`` / ``app_current_user()`` become app_system's SECURITY DEFINER functions
  (search_path pinned, EXECUTE for app_user alone) that return what a token names only when its MAC
  verifies under a known key and it has not expired, else NULL;
- every policy calls them as ``(SELECT ...)``: an InitPlan, verified once per statement, not per row;
  the user-scoped tables compare both columns with ``app_current_context()``, one verification;
  ``api_keys.key_lookup`` reads the presented key's hash through ``app_presented_key_hash()``, so no
  policy reads a setting itself;
- the webhook intake functions take the token the api signed instead of a tenant id, so calling
  them with another tenant's id gains nothing.

The current texts are in backend/sql; this revision applies its own frozen copies.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import drop_functions, frozen_sql, install_functions, install_system_functions
from app.core.roles import OWNER_ROLE, READ_ONLY_GROUP, RUNTIME_ROLE, SYSTEM_ROLE

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

KEYS_TABLE = "tenant_context_keys"
CONTEXT_FUNCTIONS = {
    "app_current_tenant()": frozen_sql(__file__, "0024_app_current_tenant.sql"),
    "app_current_user()": frozen_sql(__file__, "0024_app_current_user.sql"),
    "app_current_context()": frozen_sql(__file__, "0024_app_current_context.sql"),
}
CONTEXT_FUNCTIONS_BEFORE = {
    "app_current_tenant()": frozen_sql(__file__, "0024_downgrade_app_current_tenant.sql"),
    "app_current_user()": frozen_sql(__file__, "0024_downgrade_app_current_user.sql"),
}
KEY_HASH = {"app_presented_key_hash()": frozen_sql(__file__, "0024_app_presented_key_hash.sql")}
INTAKE = {
    "webhook_intake_secrets(text)": frozen_sql(__file__, "0024_webhook_intake_secrets.sql"),
    "webhook_intake_event(text, text, text, text, text, text, text, timestamptz, bigint, text, jsonb)": frozen_sql(
        __file__, "0024_webhook_intake_event.sql"
    ),
    "webhook_intake_dead_letter(text, text, text, text, jsonb, text, integer, jsonb)": frozen_sql(
        __file__, "0024_webhook_intake_dead_letter.sql"
    ),
}
INTAKE_BEFORE = {
    "webhook_intake_secrets(uuid)": frozen_sql(__file__, "0024_downgrade_webhook_intake_secrets.sql"),
    "webhook_intake_event(uuid, text, text, text, text, text, text, timestamptz, bigint, text, jsonb)": frozen_sql(
        __file__, "0024_downgrade_webhook_intake_event.sql"
    ),
    "webhook_intake_dead_letter(uuid, text, text, text, jsonb, text, integer, jsonb)": frozen_sql(
        __file__, "0024_downgrade_webhook_intake_dead_letter.sql"
    ),
}
TENANT_TABLES = (
    "api_keys",
    "attribution_events",
    "attribution_jobs",
    "attribution_results",
    "dead_letter_events",
    "llm_response_cache",
    "outbox",
    "platform_connections",
    "reconciliation_items",
    "reconciliation_runs",
    "tenants",
    "webhook_secrets",
)
USER_TABLES = (
    "budget_optimization_jobs",
    "investigations",
    "llm_api_calls",
    "llm_budget_periods",
    "llm_budget_reservations",
    "llm_distillation_records",
    "llm_hourly_shutoff",
    "llm_jobs",
)
TENANT = "tenant_id = (SELECT app_current_tenant())"
# One verification for both columns (two sub-selects would verify the token twice per expression).
USER = "(tenant_id, user_id) = (SELECT c.tenant_id, c.user_id FROM app_current_context() c)"
TENANT_BEFORE = "tenant_id = app_current_tenant()"
USER_BEFORE = "tenant_id = app_current_tenant() AND user_id = app_current_user()"
KEY_LOOKUP = "key_hash = app_presented_key_hash()"
KEY_LOOKUP_BEFORE = "key_hash = nullif(current_setting('app.api_key_hash', true), '')"


def _policies(tenant: str, user: str, key_lookup: str) -> None:
    for table in TENANT_TABLES:
        op.execute(f"ALTER POLICY tenant_isolation ON {table} USING ({tenant}) WITH CHECK ({tenant})")
    for table in USER_TABLES:
        op.execute(f"ALTER POLICY tenant_isolation ON {table} USING ({user}) WITH CHECK ({user})")
    op.execute(f"ALTER POLICY key_lookup ON api_keys USING ({key_lookup})")


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {KEYS_TABLE} (
            key_id    text PRIMARY KEY CHECK (key_id ~ '^[^.]{{1,64}}$'),
            k_ipad    bytea NOT NULL CHECK (octet_length(k_ipad) = 64),
            k_opad    bytea NOT NULL CHECK (octet_length(k_opad) = 64),
            added_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(f"REVOKE ALL ON {KEYS_TABLE} FROM PUBLIC")
    op.execute(f"GRANT SELECT ON {KEYS_TABLE} TO {SYSTEM_ROLE}")
    install_system_functions(CONTEXT_FUNCTIONS)
    for signature in CONTEXT_FUNCTIONS:  # app_ro's policies call them too (app_user got EXECUTE above)
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {READ_ONLY_GROUP}")
    install_functions(op.execute, KEY_HASH)
    _policies(TENANT, USER, KEY_LOOKUP)
    drop_functions(op.execute, INTAKE_BEFORE)
    install_functions(op.execute, INTAKE)


def downgrade() -> None:
    drop_functions(op.execute, INTAKE)
    install_functions(op.execute, INTAKE_BEFORE)
    _policies(TENANT_BEFORE, USER_BEFORE, KEY_LOOKUP_BEFORE)
    drop_functions(op.execute, KEY_HASH)
    op.execute("DROP FUNCTION app_current_context()")
    for signature, body in CONTEXT_FUNCTIONS_BEFORE.items():
        op.execute(body)
        op.execute(f"ALTER FUNCTION {signature} OWNER TO {OWNER_ROLE}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM {RUNTIME_ROLE}, {READ_ONLY_GROUP}")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO PUBLIC")  # PostgreSQL's default, as 0001 left it
    op.execute(f"DROP TABLE {KEYS_TABLE}")
