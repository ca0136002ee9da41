"""The privilege audit passes on the migrated schema and fails on each kind of drift it guards:
a new tenant table without forced RLS, a write grant to a read-only role, a grant to PUBLIC, a
missing tenant table, a SECURITY DEFINER function without a pinned search_path, a policy reading a
setting itself, a forgeable tenant context function, a role that may read the context keys, and (as
the cluster's superuser) PUBLIC's default rights to other databases and to large objects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from scripts.harness import REPO_ROOT
from scripts.identity import audit_privileges
from scripts.topology import Topology

from .conftest import superuser_dsn

CURRENT_TENANT_FILE = REPO_ROOT / "backend" / "sql" / "functions" / "app_current_tenant.sql"


def audit(topology: Topology) -> tuple[int, dict[str, Any]]:
    env = {
        **os.environ,
        "OPS_DATABASE_URL": topology.dsns.ops,
    }
    result = subprocess.run(
        [sys.executable, "scripts/identity/audit_privileges.py"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, json.loads(result.stdout)


def test_the_migrated_schema_is_least_privilege(topology: Topology) -> None:
    code, report = audit(topology)
    assert (code, report["violations"]) == (0, [])
    assert report["other_databases"], "the cluster's other databases were looked at"
    assert all(not (d["may_connect"] or d["may_create_temp"]) for d in report["other_databases"])
    assert report["large_object_functions"] == []
    roles = {role["rolname"]: role for role in report["roles"]}
    assert set(roles) == {"app_user", "app_rw", "app_ro", "ops_reader"}
    assert "app_rw" in roles["app_user"]["member_of"]
    assert len(report["tenant_tables"]) >= 10  # every tenant table was looked at
    assert {f["name"] for f in report["context_functions"] if f["security_definer"]} == set(
        audit_privileges.CONTEXT_FUNCTIONS
    )
    access = {row["role"]: row["allowed"] for row in report["context_key_access"]}
    assert set(access) == {*audit_privileges.KEY_READERS, "PUBLIC"} and not any(access.values())


@pytest.mark.parametrize(
    ("drift", "undo", "expected"),
    [
        (
            "CREATE TABLE audit_drift (id int, tenant_id uuid)",
            "DROP TABLE audit_drift",
            "table audit_drift has tenant_id but row-level security is not enabled and forced",
        ),
        (
            "GRANT INSERT ON attribution_results TO app_ro",
            "REVOKE INSERT ON attribution_results FROM app_ro",
            "app_ro (read-only) has INSERT on attribution_results",
        ),
        (
            "GRANT SELECT ON tenants TO PUBLIC",
            "REVOKE SELECT ON tenants FROM PUBLIC",
            "PUBLIC has SELECT on tenants",
        ),
        (
            "ALTER TABLE llm_hourly_shutoff RENAME TO llm_hourly_shutoff_renamed",
            "ALTER TABLE llm_hourly_shutoff_renamed RENAME TO llm_hourly_shutoff",
            "expected tenant table llm_hourly_shutoff is missing",
        ),
        (
            "CREATE FUNCTION audit_drift_definer() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
            "DROP FUNCTION audit_drift_definer()",
            "SECURITY DEFINER function audit_drift_definer() has no pinned search_path",
        ),
        (
            "CREATE POLICY audit_drift_scope ON outbox USING (current_setting('app.system_scope', true) = 'x')",
            "DROP POLICY audit_drift_scope ON outbox",
            "policy audit_drift_scope on outbox is keyed on setting app.system_scope",
        ),
        (
            "GRANT UPDATE (limit_cents) ON llm_budget_periods TO app_rw",
            "REVOKE UPDATE (limit_cents) ON llm_budget_periods FROM app_rw",
            "app_user may UPDATE llm_budget_periods.limit_cents, a limit it must obey",
        ),
        (
            "GRANT DELETE ON llm_hourly_shutoff TO app_rw",
            "REVOKE DELETE ON llm_hourly_shutoff FROM app_rw",
            "app_user may DELETE llm_hourly_shutoff, a limit it must obey",
        ),
        (
            "GRANT UPDATE ON llm_kill_switch TO app_rw",
            "REVOKE UPDATE ON llm_kill_switch FROM app_rw",
            "app_user may UPDATE llm_kill_switch.enabled, a limit it must obey",
        ),
        (
            "GRANT UPDATE ON llm_breaker_state TO app_rw",
            "REVOKE UPDATE ON llm_breaker_state FROM app_rw",
            "app_user may UPDATE llm_breaker_state, a limit it must obey",
        ),
        (  # a column-level grant is a write too
            "GRANT UPDATE (state) ON llm_breaker_state TO app_rw",
            "REVOKE UPDATE (state) ON llm_breaker_state FROM app_rw",
            "app_user may UPDATE llm_breaker_state, a limit it must obey",
        ),
        (
            "GRANT UPDATE (hourly_limit_cents) ON llm_limits TO app_rw",
            "REVOKE UPDATE (hourly_limit_cents) ON llm_limits FROM app_rw",
            "app_user may UPDATE llm_limits, a limit it must obey",
        ),
        (
            "ALTER TABLE llm_hourly_shutoff DISABLE TRIGGER llm_hourly_shutoff_guard",
            "ALTER TABLE llm_hourly_shutoff ENABLE TRIGGER llm_hourly_shutoff_guard",
            "guard trigger llm_hourly_shutoff_guard on llm_hourly_shutoff is missing or disabled",
        ),
        (
            "GRANT SELECT (secret_sealed) ON webhook_secrets TO ops_reader",
            "REVOKE SELECT (secret_sealed) ON webhook_secrets FROM ops_reader",
            "ops_reader may read sealed column webhook_secrets.secret_sealed",
        ),
        (
            "CREATE POLICY audit_drift_raw ON outbox USING (tenant_id = current_setting('app.current_tenant_id')::uuid)",
            "DROP POLICY audit_drift_raw ON outbox",
            "policy audit_drift_raw on outbox is keyed on setting app.current_tenant_id",
        ),
        (
            "CREATE POLICY audit_drift_key ON outbox FOR SELECT USING (current_setting('app.api_key_hash') <> '')",
            "DROP POLICY audit_drift_key ON outbox",
            "policy audit_drift_key on outbox is keyed on setting app.api_key_hash",
        ),
        (
            "CREATE OR REPLACE FUNCTION app_current_tenant() RETURNS uuid LANGUAGE sql STABLE AS "
            "$$ SELECT nullif(current_setting('app.current_tenant_id', true), '')::uuid $$",
            CURRENT_TENANT_FILE.read_text(encoding="utf-8"),
            "tenant context function app_current_tenant() is not a SECURITY DEFINER function of app_system",
        ),
        (
            "GRANT SELECT ON tenant_context_keys TO ops_reader",
            "REVOKE SELECT ON tenant_context_keys FROM ops_reader",
            "ops_reader may access tenant_context_keys, the keys that sign tenant contexts",
        ),
        (
            "GRANT SELECT ON tenant_context_keys TO app_rw",
            "REVOKE SELECT ON tenant_context_keys FROM app_rw",
            "app_user may access tenant_context_keys, the keys that sign tenant contexts",
        ),
        (
            "GRANT UPDATE ON tenant_context_keys TO ops_admin",
            "REVOKE UPDATE ON tenant_context_keys FROM ops_admin",
            "ops_admin may access tenant_context_keys, the keys that sign tenant contexts",
        ),
        (
            "GRANT SELECT ON kombu_message TO app_ro",
            "REVOKE SELECT ON kombu_message FROM app_ro",
            "app_ro can read broker table kombu_message, which no read-only path needs",
        ),
    ],
)
def test_drift_fails_the_audit(topology: Topology, owner_engine: Engine, drift: str, undo: str, expected: str) -> None:
    with owner_engine.begin() as conn:
        conn.execute(text(drift))
    try:
        code, report = audit(topology)
        assert code == 1
        assert expected in report["violations"]
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text(undo))
    assert audit(topology)[0] == 0  # and the same audit passes once the drift is gone


@pytest.mark.parametrize(
    ("database", "drift", "expected"),
    [
        ("postgres", "GRANT CONNECT ON DATABASE postgres TO PUBLIC", "app_user may connect to database postgres"),
        (
            "template1",
            "GRANT TEMPORARY ON DATABASE template1 TO PUBLIC",
            "ops_reader may create temporary tables in database template1",
        ),
        (
            None,
            "GRANT EXECUTE ON FUNCTION lo_from_bytea(oid, bytea) TO PUBLIC",
            "ops_reader may call large-object function lo_from_bytea(oid,bytea)",
        ),
        (None, "GRANT app_system TO app_user", "app_user is a member of app_system"),
    ],
)
def test_cluster_drift_fails_the_audit(topology: Topology, database: str | None, drift: str, expected: str) -> None:
    """PUBLIC's defaults, given back by the superuser one at a time (provisioning revoked them), and
    the runtime made a member of the role that owns the cross-tenant functions."""
    admin = superuser_dsn(topology, database)
    undo = drift.replace("GRANT", "REVOKE", 1).replace(" TO ", " FROM ")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(drift)
    try:
        code, report = audit(topology)
        assert code == 1
        assert expected in report["violations"]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(undo)
    assert audit(topology)[0] == 0


def test_a_missing_role_fails_the_audit() -> None:
    """An audit of a cluster where a role was never created must not pass for want of anything to flag."""
    empty = {
        key: []
        for key in (
            "roles",
            "table_grants",
            "owned_objects",
            "create_rights",
            "tenant_tables",
            "other_databases",
            "large_object_functions",
            "security_definer_functions",
            "policies",
            "system_role",
            "limit_writes",
            "limit_guards",
            "sealed_readers",
            "context_functions",
            "context_key_access",
        )
    }
    found = audit_privileges.violations(empty)
    assert "expected role app_user is missing" in found
    assert "expected tenant table attribution_events is missing" in found
    assert "expected role app_system is missing" in found
    assert "guard trigger llm_budget_period_guard on llm_budget_periods is missing or disabled" in found
    assert "tenant context function app_current_tenant() is missing" in found
    assert "context key table tenant_context_keys is missing" in found
