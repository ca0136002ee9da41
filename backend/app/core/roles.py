"""Database role names (docs/ops/roles.md), shared by provisioning, migrations, probes and tests."""

from __future__ import annotations

OWNER_ROLE = "app_owner"  # NOSUPERUSER; owns the schema and runs migrations
RUNTIME_ROLE = "app_user"  # the only login of api and worker
READ_WRITE_GROUP = "app_rw"  # DML grants; app_user is a member
READ_ONLY_GROUP = "app_ro"  # SELECT grants, for read-only runtime paths
OPS_READER_ROLE = "ops_reader"  # BYPASSRLS, SELECT only: ops SQL and probes, never api or worker
# LOGIN, used by the operator CLI only (never api or worker): changes budgets, the kill switch, the
# hourly shutoff and platform keys, which the runtime may read and move toward their limits only.
OPS_ADMIN_ROLE = "ops_admin"
# NOLOGIN; owns the SECURITY DEFINER functions that work across tenants (metrics aggregates, the
# outbox relay) and sees across tenants through policies of its own. Only the schema owner is a
# member (to hand it those functions); the runtime reaches it through the functions alone.
SYSTEM_ROLE = "app_system"

# PostgreSQL lets PUBLIC call these: storage outside row-level security, and a write path even for a
# read-only role. Provisioning revokes them; the privilege audit checks they stay revoked.
LARGE_OBJECT_FUNCTIONS = (
    "lo_creat",
    "lo_create",
    "lo_from_bytea",
    "lo_import",
    "lo_export",
    "lo_put",
    "lo_get",
    "lo_open",
    "lo_close",
    "loread",
    "lowrite",
    "lo_lseek",
    "lo_lseek64",
    "lo_tell",
    "lo_tell64",
    "lo_truncate",
    "lo_truncate64",
    "lo_unlink",
)

LOGIN_ROLES = (OWNER_ROLE, RUNTIME_ROLE, OPS_READER_ROLE, OPS_ADMIN_ROLE)
GROUP_ROLES = (READ_WRITE_GROUP, READ_ONLY_GROUP, SYSTEM_ROLE)
ALL_ROLES = LOGIN_ROLES + GROUP_ROLES
