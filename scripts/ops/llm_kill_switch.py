"""Flip or read the LLM provider kill switch, effective at once in every api and worker process.

    python scripts/ops/llm_kill_switch.py status
    python scripts/ops/llm_kill_switch.py on --reason "INC-123 provider returning garbage"
    python scripts/ops/llm_kill_switch.py off

Uses the runtime DSN ($B07_P4_RUNTIME_DATABASE_URL). While it is on, every LLM call is ledgered as
blocked_reason=provider_kill_switch with provider_attempted=false. (LLM_PROVIDER_KILL_SWITCH=1 in
the environment does the same but needs a restart.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repo root, when run as a file

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
        "--dsn", default=env_default("B07_P4_RUNTIME_DATABASE_URL"), help="default $B07_P4_RUNTIME_DATABASE_URL"
    )
    args = parser.parse_args(argv)
    if not args.dsn:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no DSN: pass --dsn or set B07_P4_RUNTIME_DATABASE_URL")
    if args.action == "on" and not args.reason:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "`on` needs --reason, so the next operator knows why")
    try:
        with psycopg.connect(sync_dsn(args.dsn), connect_timeout=10) as conn:
            if args.action != "status":
                conn.execute(SET_SQL, (args.action == "on", args.reason))
            row = conn.execute(GET_SQL).fetchone()
    except psycopg.Error as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"{redact_dsn(args.dsn)}: {(str(exc).splitlines() or ['failed'])[0]}")
    if row is None:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no kill-switch row: migrations are not at head")
    emit({"status": "passed", "kill_switch": "on" if row[0] else "off", "reason": row[1], "updated_at": row[2]})
    return ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
