"""Housekeeping: finished work is pruned after its retention, in small batches, by app_system.

Until now completed outbox rows, consumed broker messages, Celery's result rows, LLM cache entries
and finished jobs were kept for ever: every one of those tables grew with traffic. Now:

- ``housekeeping_prune(kind, retention_s, batch)`` (app_system, SECURITY DEFINER, search_path
  pinned, EXECUTE for app_user alone, like 0017's functions) deletes one batch of at most 5,000 rows
  of one kind older than the retention, skipping rows another transaction holds, and adds what it
  removed to ``housekeeping_totals`` (which ``/metrics`` reads). The worker calls it, one batch per
  transaction, from the ``maintenance`` queue (``app.maintenance``).
- app_system may DELETE from those six tables only (and read them, and lock their rows); it has no
  right on any ledger or evidence table (``llm_api_calls``, reservations, distillation records,
  events, dead letters, reconciliations), so not even a faulty function could prune one.
- The runtime (app_rw) loses DELETE on the ledgers and evidence it could still delete from
  (``LEDGERS``); nothing in api or worker deletes a row of them, and nothing may.
- Each kind is found through an index on its age, so a batch reads what it deletes and not the
  table. The outbox's (completed rows only) adds one index entry per completion on the hot path;
  building these indexes takes a write lock on each table for as long as the build.

The function's current text is ``backend/sql/functions/housekeeping_prune.sql``; this revision
applies its own frozen copy (``sql/0023_housekeeping_prune.sql``).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import frozen_sql, install_system_functions
from app.core.roles import OPS_READER_ROLE, READ_WRITE_GROUP, SYSTEM_ROLE

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

SIGNATURE = "housekeeping_prune(text, double precision, integer)"
# What app_system gains on each table (0017 gave it SELECT and UPDATE on the first two, and a policy
# there). A batch locks its rows FOR UPDATE SKIP LOCKED, which PostgreSQL allows only with UPDATE on
# some column: the age column each batch already reads, which the function never writes.
PRUNED = {
    "outbox": "DELETE",
    "attribution_jobs": "DELETE",
    "llm_jobs": "SELECT, DELETE, UPDATE (finished_at)",
    "llm_response_cache": "SELECT, DELETE, UPDATE (created_at)",
    "kombu_message": "SELECT, DELETE, UPDATE (timestamp)",  # broker tables: no row-level security
    "celery_taskmeta": "SELECT, DELETE, UPDATE (date_done)",
}
NEW_POLICIES = ("llm_jobs", "llm_response_cache")
# Ledger and evidence tables app_rw still held DELETE on (0005, 0001, 0003); 0022 took it on reservations.
LEDGERS = ("llm_api_calls", "llm_distillation_records", "attribution_events", "dead_letter_events")
INDEXES = {
    "outbox_completed": "ON outbox (completed_at) WHERE completed_at IS NOT NULL",
    "attribution_jobs_finished": "ON attribution_jobs (finished_at) WHERE finished_at IS NOT NULL",
    "llm_jobs_finished": "ON llm_jobs (finished_at) WHERE finished_at IS NOT NULL",
    "llm_response_cache_created": "ON llm_response_cache (created_at)",
}


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE housekeeping_totals (
            kind           text PRIMARY KEY,
            removed        bigint NOT NULL DEFAULT 0,
            batches        bigint NOT NULL DEFAULT 0,
            last_batch_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(f"GRANT SELECT ON housekeeping_totals TO {READ_WRITE_GROUP}, {OPS_READER_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON housekeeping_totals TO {SYSTEM_ROLE}")
    for table, privileges in PRUNED.items():
        op.execute(f"GRANT {privileges} ON {table} TO {SYSTEM_ROLE}")
    for table in NEW_POLICIES:
        op.execute(f"CREATE POLICY system_role ON {table} FOR ALL TO {SYSTEM_ROLE} USING (true)")
    for name, definition in INDEXES.items():
        op.execute(f"CREATE INDEX {name} {definition}")
    install_system_functions({SIGNATURE: frozen_sql(__file__, "0023_housekeeping_prune.sql")})
    op.execute(f"REVOKE DELETE ON {', '.join(LEDGERS)} FROM {READ_WRITE_GROUP}")


def downgrade() -> None:
    op.execute(f"GRANT DELETE ON {', '.join(LEDGERS)} TO {READ_WRITE_GROUP}")
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    for name in INDEXES:
        op.execute(f"DROP INDEX {name}")
    for table in NEW_POLICIES:
        op.execute(f"DROP POLICY system_role ON {table}")
    for table, privileges in PRUNED.items():
        op.execute(f"REVOKE {privileges} ON {table} FROM {SYSTEM_ROLE}")
    op.execute("DROP TABLE housekeeping_totals")
