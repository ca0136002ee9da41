"""DDL helpers the migrations share: forced row-level security and role grants."""

from __future__ import annotations

from alembic import op

from app.core.roles import OPS_READER_ROLE, READ_ONLY_GROUP, READ_WRITE_GROUP, RUNTIME_ROLE, SYSTEM_ROLE


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
