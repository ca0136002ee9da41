"""Cross-tenant work through narrow functions, not through a session setting.

Until now a transaction of the runtime role that ran ``set_config('app.system_scope', ...)`` could
read every tenant's events, dead letters, ledger and budgets ('metrics'), and read and write every
tenant's outbox and attribution jobs ('outbox_relay'). Any SQL session as app_user could do the
same, so that was no boundary. Now:

- the policies keyed on ``app.system_scope`` are gone; what remains keys on the tenant and user only;
- ``app_system`` (NOLOGIN, created by provisioning, no member but the schema owner) may see across
  tenants, through policies granted to that role;
- app_user reaches that only through SECURITY DEFINER functions owned by app_system, with a pinned
  search_path, executable by app_user alone, each returning what its one caller needs: /metrics gets
  counts and sums, the outbox relay gets the rows it claims (ids, kinds, job ids) and may only mark
  them sent, time out jobs past their deadline and send unfinished work again.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import install_system_functions
from app.core.roles import SYSTEM_ROLE

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

METRICS_TABLES = ("llm_api_calls", "llm_budget_periods", "attribution_events", "dead_letter_events")
SCOPE_POLICIES = {  # the GUC-keyed policies this revision removes, as 0003 and 0007 created them
    **{
        ("metrics_scope", table): "FOR SELECT USING (current_setting('app.system_scope', true) = 'metrics')"
        for table in METRICS_TABLES
    },
    ("relay_scope", "outbox"): "USING (current_setting('app.system_scope', true) = 'outbox_relay') "
    "WITH CHECK (current_setting('app.system_scope', true) = 'outbox_relay')",
    ("sweeper_scope", "attribution_jobs"): "USING (current_setting('app.system_scope', true) = 'outbox_relay') "
    "WITH CHECK (current_setting('app.system_scope', true) = 'outbox_relay')",
}
SYSTEM_GRANTS = {
    **{table: "SELECT" for table in METRICS_TABLES},
    "outbox": "SELECT, INSERT, UPDATE",
    "attribution_jobs": "SELECT, UPDATE",
}
DEFINER = "LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp"
FUNCTIONS = {
    "metrics_llm_outcomes()": f"""
        CREATE FUNCTION metrics_llm_outcomes()
        RETURNS TABLE (status text, reason text, n bigint, cost numeric) {DEFINER} STABLE AS $$
            SELECT status, coalesce(blocked_reason, failure_reason,
                                    CASE WHEN was_cached THEN 'cache' ELSE 'provider' END),
                   count(*), coalesce(sum(cost_cents), 0)
            FROM llm_api_calls GROUP BY 1, 2
        $$""",
    "metrics_budget()": f"""
        CREATE FUNCTION metrics_budget()
        RETURNS TABLE (spent numeric, reserved numeric, cap numeric) {DEFINER} STABLE AS $$
            SELECT coalesce(sum(spent_cents), 0), coalesce(sum(reserved_cents), 0), coalesce(sum(limit_cents), 0)
            FROM llm_budget_periods WHERE period_start = date_trunc('month', now())::date
        $$""",
    "metrics_events()": f"""
        CREATE FUNCTION metrics_events() RETURNS TABLE (platform text, n bigint) {DEFINER} STABLE AS $$
            SELECT platform, count(*) FROM attribution_events GROUP BY 1
        $$""",
    "metrics_dead_letters()": f"""
        CREATE FUNCTION metrics_dead_letters() RETURNS TABLE (reason_code text, n bigint) {DEFINER} STABLE AS $$
            SELECT reason_code, count(*) FROM dead_letter_events GROUP BY 1
        $$""",
    # Tenants with a recompute in flight or sent within the coalescing window (the partial indexes of
    # 0016) are busy: their new rows wait, as the next recompute covers them. The claim's row locks
    # belong to the caller's transaction, which marks the rows sent (or rolls back, when the broker
    # failed) after handing the messages over.
    "outbox_claim(integer, double precision)": f"""
        CREATE FUNCTION outbox_claim(p_limit integer, p_coalesce_s double precision)
        RETURNS TABLE (id bigint, tenant_id uuid, kind text, payload jsonb) {DEFINER} VOLATILE AS $$
            WITH busy AS (
    SELECT b.tenant_id FROM outbox b
    WHERE b.kind = 'attribution_recompute' AND b.completed_at IS NULL AND b.dispatched_at IS NOT NULL
    UNION
    SELECT b.tenant_id FROM outbox b
    WHERE b.kind = 'attribution_recompute' AND b.dispatched_at > now() - make_interval(secs => p_coalesce_s)
)
            SELECT o.id, o.tenant_id, o.kind, o.payload FROM outbox o
            WHERE o.dispatched_at IS NULL
              AND NOT (o.kind = 'attribution_recompute' AND o.tenant_id IN (SELECT busy.tenant_id FROM busy))
            ORDER BY o.id LIMIT p_limit FOR UPDATE OF o SKIP LOCKED
        $$""",
    "outbox_mark_dispatched(bigint[])": f"""
        CREATE FUNCTION outbox_mark_dispatched(p_ids bigint[]) RETURNS integer {DEFINER} VOLATILE AS $$
            WITH sent AS (
                UPDATE outbox SET dispatched_at = now(), attempts = attempts + 1
                WHERE id = ANY(p_ids) AND dispatched_at IS NULL RETURNING 1
            )
            SELECT count(*)::integer FROM sent
        $$""",
    # Jobs whose worker vanished time out (and their tenant's results are recomputed); work sent
    # long ago without a completion is sent again.
    "outbox_sweep(double precision)": f"""
        CREATE FUNCTION outbox_sweep(p_redispatch_after_s double precision)
        RETURNS TABLE (expired_jobs integer, redispatched integer) {DEFINER} VOLATILE AS $$
            WITH expired AS (
                UPDATE attribution_jobs
                SET status = 'timed_out', fallback_event = 'deterministic_last_touch', finished_at = now(),
                    error = 'deadline passed without a result (worker lost)',
                    result = '{{"served_model": "last_touch"}}'::jsonb
                WHERE status = 'running' AND deadline_at < now()
                RETURNING tenant_id
            ), recompute AS (  -- runs though nothing reads it, as every data-modifying WITH does
                INSERT INTO outbox (tenant_id, kind) SELECT tenant_id, 'attribution_recompute' FROM expired
            ), resent AS (
                UPDATE outbox SET dispatched_at = NULL, last_error = 'no completion in time; sent again'
                WHERE completed_at IS NULL AND dispatched_at < now() - make_interval(secs => p_redispatch_after_s)
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM expired)::integer, (SELECT count(*) FROM resent)::integer
        $$""",
}


def upgrade() -> None:
    for table, privileges in SYSTEM_GRANTS.items():
        op.execute(f"GRANT {privileges} ON {table} TO {SYSTEM_ROLE}")
        command = "SELECT" if privileges == "SELECT" else "ALL"
        check = "" if command == "SELECT" else " WITH CHECK (true)"
        op.execute(f"CREATE POLICY system_role ON {table} FOR {command} TO {SYSTEM_ROLE} USING (true){check}")
    op.execute(f"GRANT USAGE ON SEQUENCE outbox_id_seq TO {SYSTEM_ROLE}")
    for policy, table in SCOPE_POLICIES:
        op.execute(f"DROP POLICY {policy} ON {table}")
    install_system_functions(FUNCTIONS)


def downgrade() -> None:
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {signature}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {SYSTEM_ROLE}")
    for (policy, table), definition in SCOPE_POLICIES.items():
        op.execute(f"CREATE POLICY {policy} ON {table} {definition}")
    op.execute(f"REVOKE USAGE ON SEQUENCE outbox_id_seq FROM {SYSTEM_ROLE}")
    for table, privileges in SYSTEM_GRANTS.items():
        op.execute(f"DROP POLICY system_role ON {table}")
        op.execute(f"REVOKE {privileges} ON {table} FROM {SYSTEM_ROLE}")
