"""Assert that a DSN is the runtime identity: user app_user, not superuser, no BYPASSRLS.

    python scripts/identity/assert_runtime_identity.py [--dsn DSN] [--output runtime_db_probe.json]

The DSN defaults to $B07_P4_RUNTIME_DATABASE_URL, then $DATABASE_URL. Any postgresql URL form
is accepted (asyncpg, psycopg, sqla+, db+). Prints a JSON probe; writes it to --output too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import psycopg

from app.core.roles import RUNTIME_ROLE
from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, env_default, fail, redact_dsn, sync_dsn

IDENTITY_SQL = """
SELECT current_user AS db_user, session_user, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb,
       r.rolreplication, current_database() AS database, version() AS server_version,
       EXISTS (SELECT 1 FROM pg_roles g
               WHERE pg_has_role(current_user, g.oid, 'MEMBER') AND g.oid <> r.oid
                 AND (g.rolsuper OR g.rolbypassrls OR g.rolcreaterole)) AS member_of_privileged
FROM pg_roles r WHERE r.rolname = current_user
"""


def probe_identity(dsn: str, timeout_s: float) -> dict[str, Any]:
    with psycopg.connect(sync_dsn(dsn), connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn:
        cursor = conn.execute(IDENTITY_SQL)
        columns = [c.name for c in cursor.description or []]
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError("current_user has no pg_roles entry")
    return dict(zip(columns, row, strict=True))


def violations(identity: dict[str, Any], expected_user: str) -> list[str]:
    problems = []
    if identity["db_user"] != expected_user:
        problems.append(f"DB user is {identity['db_user']!r}, expected {expected_user!r}")
    for flag, label in (
        ("rolsuper", "rolsuper=true (superuser)"),
        ("rolbypassrls", "rolbypassrls=true (bypasses row-level security)"),
        ("rolcreaterole", "rolcreaterole=true"),
        ("rolcreatedb", "rolcreatedb=true"),
        ("member_of_privileged", "member of a superuser, BYPASSRLS or CREATEROLE role"),
    ):
        if identity[flag]:
            problems.append(label)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dsn",
        default=env_default("B07_P4_RUNTIME_DATABASE_URL", env_default("DATABASE_URL")),
        help="runtime DSN (env B07_P4_RUNTIME_DATABASE_URL, then DATABASE_URL)",
    )
    parser.add_argument("--expected-user", default=RUNTIME_ROLE, help=f"default {RUNTIME_ROLE}")
    parser.add_argument("--output", type=Path, help="also write the probe JSON here (runtime_db_probe.json)")
    parser.add_argument("--timeout", type=float, default=5.0, help="connect timeout in seconds")
    args = parser.parse_args(argv)
    if not args.dsn:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no DSN: pass --dsn or set B07_P4_RUNTIME_DATABASE_URL")
    try:
        identity = probe_identity(args.dsn, args.timeout)
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or ["connection failed"])[0]
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"cannot connect to {redact_dsn(args.dsn)}: {reason}")
    problems = violations(identity, args.expected_user)
    result = {
        "status": "failed" if problems else "passed",
        "dsn": redact_dsn(args.dsn),
        "expected_user": args.expected_user,
        "identity": identity,
        "violations": problems,
    }
    emit(result, args.output)
    if problems:
        print("runtime identity check failed: " + "; ".join(problems), file=sys.stderr)
        return ExitCode.GATE_FAILED
    return ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
