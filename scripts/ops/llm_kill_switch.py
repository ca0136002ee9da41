"""Flip or read the LLM provider kill switch, effective at once in every api and worker process.

    python scripts/ops/llm_kill_switch.py status
    python scripts/ops/llm_kill_switch.py on --reason "INC-123 provider returning garbage"
    python scripts/ops/llm_kill_switch.py off

Connects as ops_admin ($OPS_ADMIN_DATABASE_URL): the switch is the operators', and the runtime role
may only read it (migration 0019). While it is on, every LLM call is ledgered as
blocked_reason=provider_kill_switch with provider_attempted=false. (LLM_PROVIDER_KILL_SWITCH=1 in
the environment does the same but needs a restart.)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import psycopg

from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, env_default, fail, redact_dsn, sync_dsn

SET_SQL = "UPDATE llm_kill_switch SET enabled = %s, reason = %s, updated_at = now() WHERE id = 1"
GET_SQL = "SELECT enabled, reason, updated_at FROM llm_kill_switch WHERE id = 1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["status", "on", "off"])
    parser.add_argument("--reason", default=None, help="why (required for `on`; kept with the flag)")
    parser.add_argument(
        "--dsn",
        default=env_default("OPS_ADMIN_DATABASE_URL"),
        help="default $OPS_ADMIN_DATABASE_URL (prefer the environment: a command line is visible to every user)",
    )
    args = parser.parse_args(argv)
    if not args.dsn:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no DSN: set OPS_ADMIN_DATABASE_URL (source .run/topology.env)")
    if args.action == "on" and not args.reason:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "`on` needs --reason, so the next operator knows why")
    try:
        with psycopg.connect(sync_dsn(args.dsn), connect_timeout=10) as conn:
            state = switch(conn, args.action, args.reason)
    except psycopg.Error as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"{redact_dsn(args.dsn)}: {(str(exc).splitlines() or ['failed'])[0]}")
    if state is None:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no kill-switch row: migrations are not at head")
    emit({"status": "passed", **state})
    return ExitCode.PASS


def switch(conn: psycopg.Connection[Any], action: str, reason: str | None) -> dict[str, Any] | None:
    """Turn the switch ``on``/``off`` (or only read it, ``status``); returns its state, None without a row."""
    if action != "status":
        conn.execute(SET_SQL, (action == "on", reason))
    row = conn.execute(GET_SQL).fetchone()
    return None if row is None else {"kill_switch": "on" if row[0] else "off", "reason": row[1], "updated_at": row[2]}


if __name__ == "__main__":
    sys.exit(main())
