"""Audit database privileges: every role's attributes and grants, checked for least privilege.

    python scripts/identity/audit_privileges.py [--dsn DSN] [--output privilege_audit.json]

Reads only the catalogs, so any role that can connect will do; the DSN defaults to
$OPS_DATABASE_URL, then $B07_P4_RUNTIME_DATABASE_URL. Fails (exit 1) on any of:

- a runtime role (app_user, app_rw, app_ro, ops_reader) with SUPERUSER, CREATEDB, CREATEROLE or
  REPLICATION, or app_user/app_rw/app_ro with BYPASSRLS;
- a runtime role that owns a relation, function, type or schema, or may CREATE in the database
  or in a schema, or holds a privilege WITH GRANT OPTION;
- ops_reader or app_ro with any privilege beyond SELECT, or app_ro on a broker table;
- any table privilege granted to PUBLIC;
- a table with a ``tenant_id`` column whose row-level security is not enabled and forced;
- an expected role or tenant table that is missing (an audit of an empty schema proves nothing);
- a runtime role that may connect to, or create temporary tables in, any other database of the
  cluster, or create temporary tables in this one;
- a runtime role that may call a large-object function (storage outside row-level security,
  and a write path for the read-only role);
- a SECURITY DEFINER function without a pinned ``search_path``, or executable by PUBLIC;
- a row-level security policy that reads a session setting itself (``current_setting``): any
  setting is one the runtime role may set, so a policy must go through the context functions;
- a tenant context function (``app_current_tenant``, ``app_current_user``, ``app_current_context``)
  that is missing, not
  SECURITY DEFINER or not app_system's (a plain function reading a setting would make the context
  forgeable again);
- the context key table (``tenant_context_keys``) missing, or any privilege on it held by a runtime
  or ops role or PUBLIC (whoever reads it can sign a context for any tenant);
- app_system (the owner of the cross-tenant functions) able to log in, or any role but the schema
  owner a member of it;
- a runtime role that may change a limit or a switch it must obey (a budget period's limit, the kill
  switch, the operators' limits), or delete a budget period or an hourly shutoff; or a guard trigger
  (a period the runtime creates gets the operators' limit; spend and shutoffs only move toward the
  limit) that is missing or disabled;
- ops_reader or app_ro able to read a sealed credential column (webhook secrets, platform keys).

``--shared-cluster`` (an existing server that other applications use too, whose other databases
are not ours to lock) reports the cluster-wide findings as ``warnings`` instead of failing on them.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import psycopg

from app.core.roles import (
    LARGE_OBJECT_FUNCTIONS,
    OPS_ADMIN_ROLE,
    OPS_READER_ROLE,
    OWNER_ROLE,
    READ_ONLY_GROUP,
    READ_WRITE_GROUP,
    RUNTIME_ROLE,
    SYSTEM_ROLE,
)
from app.core.tenancy import CONTEXT_KEYS_TABLE
from app.tenants.credentials import SEALED_COLUMNS
from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, env_default, fail, redact_dsn, sync_dsn

RUNTIME_ROLES = (RUNTIME_ROLE, READ_WRITE_GROUP, READ_ONLY_GROUP, OPS_READER_ROLE)
READ_ONLY_ROLES = (READ_ONLY_GROUP, OPS_READER_ROLE)
BROKER_TABLES = ("kombu_message", "kombu_queue", "celery_taskmeta", "celery_tasksetmeta")
# Tenant tables the migrations create with forced RLS; each must be there for the audit to mean anything.
EXPECTED_TENANT_TABLES = (
    "api_keys",
    "attribution_events",
    "attribution_jobs",
    "attribution_results",
    "dead_letter_events",
    "llm_api_calls",
    "llm_budget_periods",
    "llm_hourly_shutoff",
    "llm_response_cache",
    "outbox",
    "platform_connections",
    "reconciliation_runs",
    "webhook_secrets",
)

ROLES_SQL = """
SELECT r.rolname, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls, r.rolcanlogin,
       coalesce(array_agg(g.rolname ORDER BY g.rolname) FILTER (WHERE g.rolname IS NOT NULL), '{}') AS member_of
FROM pg_roles r
LEFT JOIN pg_auth_members m ON m.member = r.oid
LEFT JOIN pg_roles g ON g.oid = m.roleid
WHERE r.rolname = ANY(%(roles)s)
GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1
"""
# From the ACLs themselves: information_schema only shows grants the reading role takes part in.
GRANTS_SQL = """
SELECT grantee, table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) AS privileges,
       bool_or(is_grantable) AS grantable
FROM (
    SELECT CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(acl.grantee) END AS grantee,
           c.relname::text AS table_name, acl.privilege_type, acl.is_grantable
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL aclexplode(c.relacl) acl
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
) grants
WHERE grantee = ANY(%(grantees)s)
GROUP BY 1, 2 ORDER BY 1, 2
"""
OWNED_SQL = """
SELECT pg_get_userbyid(owner) AS owner, kind, name FROM (
    SELECT relowner AS owner, 'relation' AS kind, relname::text AS name FROM pg_class
    UNION ALL SELECT proowner, 'function', proname::text FROM pg_proc
    UNION ALL SELECT typowner, 'type', typname::text FROM pg_type
    UNION ALL SELECT nspowner, 'schema', nspname::text FROM pg_namespace
) owned WHERE pg_get_userbyid(owner) = ANY(%(roles)s) ORDER BY 1, 2, 3
"""
CREATE_SQL = """
SELECT r.rolname,
       has_database_privilege(r.rolname, current_database(), 'CREATE') AS create_in_database,
       has_database_privilege(r.rolname, current_database(), 'TEMP') AS create_temp,
       array(SELECT nspname::text FROM pg_namespace
             WHERE nspname NOT LIKE 'pg\\_%%' AND nspname <> 'information_schema'
               AND has_schema_privilege(r.rolname, nspname, 'CREATE')) AS create_in_schemas
FROM pg_roles r WHERE r.rolname = ANY(%(roles)s) ORDER BY 1
"""
DATABASES_SQL = """
SELECT r.rolname, d.datname,
       has_database_privilege(r.rolname, d.datname, 'CONNECT') AS may_connect,
       has_database_privilege(r.rolname, d.datname, 'TEMP') AS may_create_temp
FROM pg_roles r CROSS JOIN pg_database d
WHERE r.rolname = ANY(%(roles)s) AND d.datallowconn AND d.datname <> current_database()
ORDER BY 1, 2
"""
LARGE_OBJECTS_SQL = """
SELECT r.rolname, p.oid::regprocedure::text AS function
FROM pg_roles r CROSS JOIN pg_proc p
WHERE r.rolname = ANY(%(roles)s) AND p.pronamespace = 'pg_catalog'::regnamespace
  AND p.proname = ANY(%(functions)s) AND has_function_privilege(r.rolname, p.oid, 'EXECUTE')
ORDER BY 1, 2
"""
SECURITY_DEFINER_SQL = """
SELECT p.oid::regprocedure::text AS function,
       coalesce(EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%%'), false) AS pinned_path,
       EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
               WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_execute
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1
"""
POLICIES_SQL = """
SELECT tablename::text AS table_name, policyname::text AS policy, roles::text[] AS roles,
       coalesce(qual, '') || ' ' || coalesce(with_check, '') AS expression
FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2
"""
CONTEXT_FUNCTIONS = ("app_current_context", "app_current_tenant", "app_current_user")
CONTEXT_FUNCTIONS_SQL = """
SELECT p.proname::text AS name, p.prosecdef AS security_definer, pg_get_userbyid(p.proowner)::text AS owner
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proname = ANY(%(names)s) ORDER BY 1
"""
# Every role but the owner and app_system (whose functions verify with it), and PUBLIC's grants.
KEY_READERS = (*RUNTIME_ROLES, OPS_ADMIN_ROLE)
KEY_ACCESS_SQL = """
SELECT r.rolname::text AS role,
       has_table_privilege(r.rolname, %(table)s, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES') AS allowed
FROM pg_roles r WHERE r.rolname = ANY(%(roles)s) AND to_regclass(%(table)s) IS NOT NULL
UNION ALL
SELECT 'PUBLIC', EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0)
FROM pg_class c WHERE c.oid = to_regclass(%(table)s)
ORDER BY 1
"""
SYSTEM_ROLE_SQL = """
SELECT r.rolcanlogin AS can_login,
       array(SELECT pg_get_userbyid(m.member)::text FROM pg_auth_members m WHERE m.roleid = r.oid ORDER BY 1)
           AS members
FROM pg_roles r WHERE r.rolname = %(role)s
"""
# What the runtime must not be able to do to the limits and switches it obeys (migrations 0019, 0029).
FORBIDDEN_WRITES = (
    ("llm_budget_periods", "limit_cents", "UPDATE"),
    ("llm_budget_periods", None, "DELETE"),
    ("llm_hourly_shutoff", None, "DELETE"),
    ("llm_kill_switch", "enabled", "UPDATE"),
    ("llm_kill_switch", None, "INSERT"),
    ("llm_kill_switch", None, "DELETE"),
    ("llm_limits", None, "UPDATE"),
    ("llm_limits", None, "INSERT"),
    ("llm_limits", None, "DELETE"),
    # The breaker every tenant shares: only app_system's functions move it, for a call of the caller's (0029).
    ("llm_breaker_state", None, "INSERT"),
    ("llm_breaker_state", None, "UPDATE"),
    ("llm_breaker_state", None, "DELETE"),
)
LIMIT_GUARDS = {"llm_budget_periods": "llm_budget_period_guard", "llm_hourly_shutoff": "llm_hourly_shutoff_guard"}
CAN_READ_SQL = "SELECT has_column_privilege(%(role)s, %(table)s, %(column)s, 'SELECT') AS allowed"
# A write named without a column is forbidden on every column: a column-level grant of INSERT or
# UPDATE (``GRANT UPDATE (state) ON ...``) is as much a write as a table-level one.
WRITE_SQL = """
SELECT CASE WHEN %(column)s::text IS NOT NULL
                THEN has_column_privilege(%(role)s, %(table)s, %(column)s::text, %(privilege)s)
            WHEN %(privilege)s IN ('INSERT', 'UPDATE')
                THEN has_any_column_privilege(%(role)s, %(table)s, %(privilege)s)
            ELSE has_table_privilege(%(role)s, %(table)s, %(privilege)s) END AS allowed
"""
GUARDS_SQL = """
SELECT c.relname::text AS table_name, t.tgname::text AS trigger, t.tgenabled <> 'D' AS enabled
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE NOT t.tgisinternal AND t.tgname = ANY(%(guards)s)
"""
RLS_SQL = """
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
ORDER BY 1
"""


def rows(conn: psycopg.Connection[Any], query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cursor = conn.execute(query, params or {})
    names = [column.name for column in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def limit_writes(conn: psycopg.Connection[Any], roles: list[str]) -> list[dict[str, Any]]:
    """Each runtime role's forbidden writes that it could make (tables that do not exist are skipped:
    the missing-table check reports them)."""
    present = {row["name"] for row in rows(conn, "SELECT relname::text AS name FROM pg_class WHERE relkind = 'r'")}
    allowed = []
    for role in roles:
        for table, column, privilege in FORBIDDEN_WRITES:
            if table not in present:
                continue
            params = {"role": role, "table": table, "column": column, "privilege": privilege}
            if rows(conn, WRITE_SQL, params)[0]["allowed"]:
                allowed.append({"role": role, "table": table, "column": column, "privilege": privilege})
    return allowed


def sealed_readers(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Read-only roles that could SELECT a sealed credential column (ciphertexts, but still nothing
    an ops role needs; absent columns are the missing-table check's business)."""
    present = {
        (row["table_name"], row["column_name"])
        for row in rows(conn, "SELECT table_name::text, column_name::text FROM information_schema.columns")
    }
    readers = []
    for role in READ_ONLY_ROLES:
        for sealed in SEALED_COLUMNS:
            if (sealed.table, sealed.column) not in present:
                continue
            params = {"role": role, "table": sealed.table, "column": sealed.column}
            if rows(conn, CAN_READ_SQL, params)[0]["allowed"]:
                readers.append(params)
    return readers


def collect(dsn: str) -> dict[str, Any]:
    roles = list(RUNTIME_ROLES)
    with psycopg.connect(sync_dsn(dsn), connect_timeout=10) as conn:
        conn.read_only = True
        return {
            "roles": rows(conn, ROLES_SQL, {"roles": roles}),
            "table_grants": rows(conn, GRANTS_SQL, {"grantees": [*roles, "PUBLIC"]}),
            "owned_objects": rows(conn, OWNED_SQL, {"roles": roles}),
            "create_rights": rows(conn, CREATE_SQL, {"roles": roles}),
            "tenant_tables": rows(conn, RLS_SQL),
            "other_databases": rows(conn, DATABASES_SQL, {"roles": roles}),
            "large_object_functions": rows(
                conn, LARGE_OBJECTS_SQL, {"roles": roles, "functions": list(LARGE_OBJECT_FUNCTIONS)}
            ),
            "security_definer_functions": rows(conn, SECURITY_DEFINER_SQL),
            "policies": rows(conn, POLICIES_SQL),
            "limit_writes": limit_writes(conn, roles),
            "limit_guards": rows(conn, GUARDS_SQL, {"guards": list(LIMIT_GUARDS.values())}),
            "sealed_readers": sealed_readers(conn),
            "system_role": rows(conn, SYSTEM_ROLE_SQL, {"role": SYSTEM_ROLE}),
            "context_functions": rows(conn, CONTEXT_FUNCTIONS_SQL, {"names": list(CONTEXT_FUNCTIONS)}),
            "context_key_access": rows(
                conn, KEY_ACCESS_SQL, {"roles": list(KEY_READERS), "table": f"public.{CONTEXT_KEYS_TABLE}"}
            ),
        }


def cluster_findings(audit: dict[str, Any]) -> list[str]:
    """What a runtime role may do in the cluster's other databases."""
    found = []
    for access in audit["other_databases"]:
        who, database = access["rolname"], access["datname"]
        if access["may_connect"]:
            found.append(f"{who} may connect to database {database}")
        if access["may_create_temp"]:
            found.append(f"{who} may create temporary tables in database {database}")
    return found


SETTING_READ = re.compile(r"current_setting\('([^']+)'")


def context_findings(audit: dict[str, Any]) -> list[str]:
    """The tenant context can be forged if a context function reads a setting as the caller, or if a
    role the runtime or an operator logs in as can read (or write) the keys that sign it."""
    found = []
    functions = {function["name"]: function for function in audit["context_functions"]}
    for name in CONTEXT_FUNCTIONS:
        function = functions.get(name)
        if function is None:
            found.append(f"tenant context function {name}() is missing")
        elif not function["security_definer"] or function["owner"] != SYSTEM_ROLE:
            found.append(f"tenant context function {name}() is not a SECURITY DEFINER function of {SYSTEM_ROLE}")
    if not audit["context_key_access"]:
        found.append(f"context key table {CONTEXT_KEYS_TABLE} is missing")
    found += [
        f"{access['role']} may access {CONTEXT_KEYS_TABLE}, the keys that sign tenant contexts"
        for access in audit["context_key_access"]
        if access["allowed"]
    ]
    return found


def policy_findings(audit: dict[str, Any]) -> list[str]:
    found = context_findings(audit)
    for policy in audit["policies"]:
        for setting in sorted(set(SETTING_READ.findall(policy["expression"]))):
            found.append(f"policy {policy['policy']} on {policy['table_name']} is keyed on setting {setting}")
    for system in audit["system_role"]:
        if system["can_login"]:
            found.append(f"{SYSTEM_ROLE} can log in")
        found += [f"{member} is a member of {SYSTEM_ROLE}" for member in system["members"] if member != OWNER_ROLE]
    if not audit["system_role"]:
        found.append(f"expected role {SYSTEM_ROLE} is missing")
    for write in audit["limit_writes"]:
        target = f"{write['table']}.{write['column']}" if write["column"] else write["table"]
        found.append(f"{write['role']} may {write['privilege']} {target}, a limit it must obey")
    found += [f"{r['role']} may read sealed column {r['table']}.{r['column']}" for r in audit["sealed_readers"]]
    guards = {guard["trigger"]: guard["enabled"] for guard in audit["limit_guards"]}
    for table, trigger in LIMIT_GUARDS.items():
        if not guards.get(trigger):
            found.append(f"guard trigger {trigger} on {table} is missing or disabled")
    return found


def violations(audit: dict[str, Any], shared_cluster: bool = False) -> list[str]:
    found = ([] if shared_cluster else cluster_findings(audit)) + policy_findings(audit)
    present = {role["rolname"] for role in audit["roles"]}
    found += [f"expected role {name} is missing" for name in RUNTIME_ROLES if name not in present]
    tables = {table["relname"] for table in audit["tenant_tables"]}
    found += [f"expected tenant table {name} is missing" for name in EXPECTED_TENANT_TABLES if name not in tables]
    found += [f"{f['rolname']} may call large-object function {f['function']}" for f in audit["large_object_functions"]]
    for function in audit["security_definer_functions"]:
        if not function["pinned_path"]:
            found.append(f"SECURITY DEFINER function {function['function']} has no pinned search_path")
        if function["public_execute"]:
            found.append(f"SECURITY DEFINER function {function['function']} is executable by PUBLIC")
    for role in audit["roles"]:
        name = role["rolname"]
        for flag in ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication"):
            if role[flag]:
                found.append(f"{name} has {flag}")
        if role["rolbypassrls"] and name != OPS_READER_ROLE:
            found.append(f"{name} bypasses row-level security")
    found += [f"{o['owner']} owns {o['kind']} {o['name']}" for o in audit["owned_objects"]]
    for right in audit["create_rights"]:
        if right["create_in_database"] or right["create_temp"]:
            found.append(f"{right['rolname']} may create objects in the database")
        found += [f"{right['rolname']} may CREATE in schema {schema}" for schema in right["create_in_schemas"]]
    for grant in audit["table_grants"]:
        who, table, privileges = grant["grantee"], grant["table_name"], set(grant["privileges"].split(","))
        if who == "PUBLIC":
            found.append(f"PUBLIC has {grant['privileges']} on {table}")
        if grant["grantable"]:
            found.append(f"{who} may grant its privileges on {table} to others")
        if who in READ_ONLY_ROLES and privileges - {"SELECT"}:
            found.append(f"{who} (read-only) has {','.join(sorted(privileges - {'SELECT'}))} on {table}")
        if who == READ_ONLY_GROUP and table in BROKER_TABLES:
            found.append(f"{who} can read broker table {table}, which no read-only path needs")
    for table in audit["tenant_tables"]:
        if not (table["relrowsecurity"] and table["relforcerowsecurity"]):
            found.append(f"table {table['relname']} has tenant_id but row-level security is not enabled and forced")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dsn",
        default=env_default("OPS_DATABASE_URL", env_default("B07_P4_RUNTIME_DATABASE_URL")),
        help="any DSN of the database (default $OPS_DATABASE_URL, then $B07_P4_RUNTIME_DATABASE_URL)",
    )
    parser.add_argument("--output", type=Path, help="also write the JSON audit here")
    parser.add_argument(
        "--shared-cluster",
        action="store_true",
        help="an existing server other applications share: report its other databases as warnings only",
    )
    args = parser.parse_args(argv)
    if not args.dsn:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no DSN: pass --dsn or set OPS_DATABASE_URL")
    try:
        audit = collect(args.dsn)
    except psycopg.Error as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"audit failed: {redact_dsn(str(exc).splitlines()[0])}")
    found = violations(audit, args.shared_cluster)
    warnings = cluster_findings(audit) if args.shared_cluster else []
    audit.update(status="failed" if found else "passed", violations=found, warnings=warnings)
    emit(audit, args.output)
    return ExitCode.GATE_FAILED if found else ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
