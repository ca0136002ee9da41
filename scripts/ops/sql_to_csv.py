"""Run read-only SQL files against a DSN, one CSV per file (header row first).

    python scripts/ops/sql_to_csv.py --dsn DSN --out-dir DIR docs/ops/b07_p4/sql/*.sql

Use the ops_reader DSN ($OPS_DATABASE_URL): cross-tenant totals need its BYPASSRLS; the session is
read-only, so a mistaken statement cannot change anything.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import psycopg

from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, env_default, fail, redact_dsn, sync_dsn


def write_csv(cursor: psycopg.Cursor[Any], target: Path) -> int:
    """A query's result as CSV, header row first; returns the number of data rows."""
    rows = cursor.fetchall()
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([column.name for column in cursor.description or []])
        writer.writerows(rows)
    return len(rows)


def run(dsn: str, files: list[Path], out_dir: Path) -> dict[str, int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows_written = {}
    with psycopg.connect(sync_dsn(dsn), connect_timeout=10) as conn:
        conn.read_only = True
        for path in files:
            target = out_dir / f"{path.stem}.csv"
            # operator-owned SQL files, read-only session
            rows_written[target.name] = write_csv(conn.execute(path.read_text()), target)
    return rows_written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=env_default("OPS_DATABASE_URL"), help="default $OPS_DATABASE_URL")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("sql_files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if not args.dsn:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no DSN: pass --dsn or set OPS_DATABASE_URL")
    missing = [str(p) for p in args.sql_files if not p.is_file()]
    if missing:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"no such SQL file: {', '.join(missing)}")
    try:
        written = run(args.dsn, args.sql_files, args.out_dir)
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or ["query failed"])[0]
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"{redact_dsn(args.dsn)}: {reason}")
    emit({"status": "passed", "out_dir": str(args.out_dir), "rows": written})
    return ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
