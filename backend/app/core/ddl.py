"""DDL helpers for the migrations in backend/alembic/versions: forced row-level security, role grants,
function installation, and the frozen SQL files a revision applies.

Revisions already applied somewhere call these, so what a helper emits never changes: a new shape
of policy or grant is a new helper (or plain SQL in the new revision). The current definition of
every function and policy lives in backend/sql/ (see its README), not here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import op

from app.core.roles import OPS_READER_ROLE, READ_ONLY_GROUP, READ_WRITE_GROUP, RUNTIME_ROLE, SYSTEM_ROLE


def frozen_sql(revision_file: str, name: str) -> str:
    """The text of ``sql/<name>`` beside a revision (pass its ``__file__``): a frozen copy of what
    that revision applies, never edited once the revision is released."""
    return (Path(revision_file).parent / "sql" / name).read_text(encoding="utf-8")


def force_tenant_rls(table: str, *, user_scoped: bool = False) -> None:
    """Enable and force RLS on a tenant table; rows are visible only inside their tenant's context."""
    predicate = "tenant_id = app_current_tenant()"
    if user_scoped:
        predicate += " AND user_id = app_current_user()"
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})")


def grant_runtime(table: str, *, writable: bool = True) -> None:
    """Runtime DML through app_rw, reads through app_ro, cross-tenant reads for ops_reader."""
    if writable:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {READ_WRITE_GROUP}")
    else:
        op.execute(f"GRANT SELECT ON {table} TO {READ_WRITE_GROUP}")
    op.execute(f"GRANT SELECT ON {table} TO {READ_ONLY_GROUP}, {OPS_READER_ROLE}")


def install_functions(execute: Callable[[str], object], functions: dict[str, str]) -> None:
    """Create server-side functions ({signature: CREATE FUNCTION ...}) that the runtime may call:
    EXECUTE goes to the read-write group instead of PUBLIC (PostgreSQL's default)."""
    for signature, body in functions.items():
        execute(body)
        execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {READ_WRITE_GROUP}")


def drop_functions(execute: Callable[[str], object], functions: dict[str, str]) -> None:
    for signature in reversed(functions):
        execute(f"DROP FUNCTION {signature}")


def install_system_functions(functions: dict[str, str]) -> None:
    """Create SECURITY DEFINER functions ({signature: CREATE FUNCTION ...}) and hand them to app_system,
    executable by the runtime role alone. A new owner must be allowed to create in the schema at the
    moment it takes a function over; app_system keeps no such right afterwards."""
    op.execute(f"GRANT USAGE ON SCHEMA public TO {SYSTEM_ROLE}")
    op.execute(f"GRANT CREATE ON SCHEMA public TO {SYSTEM_ROLE}")
    for signature, body in functions.items():
        op.execute(body)
        op.execute(f"ALTER FUNCTION {signature} OWNER TO {SYSTEM_ROLE}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {RUNTIME_ROLE}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {SYSTEM_ROLE}")
