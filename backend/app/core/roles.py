"""Database role names (DESIGN §4), shared by provisioning, migrations, probes and tests."""

from __future__ import annotations

OWNER_ROLE = "app_owner"  # NOSUPERUSER; owns the schema and runs migrations
RUNTIME_ROLE = "app_user"  # the only login of api and worker
READ_WRITE_GROUP = "app_rw"  # DML grants; app_user is a member
READ_ONLY_GROUP = "app_ro"  # SELECT grants, for read-only runtime paths
OPS_READER_ROLE = "ops_reader"  # BYPASSRLS, SELECT only: ops SQL and probes, never api or worker

LOGIN_ROLES = (OWNER_ROLE, RUNTIME_ROLE, OPS_READER_ROLE)
GROUP_ROLES = (READ_WRITE_GROUP, READ_ONLY_GROUP)
ALL_ROLES = LOGIN_ROLES + GROUP_ROLES
