"""Database role names (DESIGN §4), shared by provisioning, migrations, probes and tests."""

from __future__ import annotations

from collections.abc import Callable

OWNER_ROLE = "app_owner"  # NOSUPERUSER; owns the schema and runs migrations
RUNTIME_ROLE = "app_user"  # the only login of api and worker
READ_WRITE_GROUP = "app_rw"  # DML grants; app_user is a member
READ_ONLY_GROUP = "app_ro"  # SELECT grants, for read-only runtime paths
OPS_READER_ROLE = "ops_reader"  # BYPASSRLS, SELECT only: ops SQL and probes, never api or worker

LOGIN_ROLES = (OWNER_ROLE, RUNTIME_ROLE, OPS_READER_ROLE)
GROUP_ROLES = (READ_WRITE_GROUP, READ_ONLY_GROUP)
ALL_ROLES = LOGIN_ROLES + GROUP_ROLES


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
