"""Named read-only SQL probes into the evidence pack (EG8.4, EG8.5).

    python scripts/phase8/collect_sql_probes.py --artifact-dir DIR [--window-from r3.json] [--require-composed]

Runs as ops_reader ($OPS_DATABASE_URL; BYPASSRLS, read-only session) and writes:

- sql/phase8_sql_probe_summary.json: every probe's value, the checks and their verdict;
- sql/phase8_llm_outcomes.csv: ledger rows by endpoint, status and reason, with cost and cache hits;
- sql/phase8_topology_counts.csv: rows per table, including the broker's own tables;
- sql/phase8_pg_snapshot.csv: server statistics (commits, rollbacks, deadlocks, connections).

With ``--window-from`` (the ingestion result, which records its UTC window) and ``--llm-load-from``
(the LLM background load's result, which names its tenant) it also counts
``perf_composed_llm_calls``: calls of that load which reached the provider and succeeded inside
the window, the proof that the LLM boundary really worked while ingestion ran. Blocked, failed
and cached calls, and other tenants' calls, do not count; they are broken down by outcome beside
it in ``perf_composed_llm_outcomes``. ``--require-composed`` fails when the count is 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import psycopg

from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, env_default, fail, redact_dsn, sync_dsn
from scripts.ops.sql_to_csv import write_csv

SCALAR_PROBES: dict[str, str] = {
    "probe_identity": "SELECT current_user",
    "llm_calls_total": "SELECT count(*) FROM llm_api_calls",
    "llm_calls_pending": "SELECT count(*) FROM llm_api_calls WHERE status = 'pending'",
    "llm_duplicate_ledger_rows": """
        SELECT count(*) FROM (SELECT 1 FROM llm_api_calls GROUP BY tenant_id, request_id, endpoint
                              HAVING count(*) > 1) d""",
    "llm_cost_cents_total": "SELECT coalesce(sum(cost_cents), 0)::float FROM llm_api_calls",
    "llm_cache_hits": "SELECT count(*) FROM llm_api_calls WHERE was_cached",
    "llm_budget_periods_over_limit": """
        SELECT count(*) FROM llm_budget_periods WHERE reserved_cents + spent_cents > limit_cents""",
    "llm_succeeded_without_distillation": """
        SELECT count(*) FROM llm_api_calls
        WHERE status = 'succeeded' AND provider_attempted AND (reasoning_ref IS NULL OR metadata_ref IS NULL)""",
    "attribution_events_total": "SELECT count(*) FROM attribution_events",
    "dead_letters_total": "SELECT count(*) FROM dead_letter_events",
    "outbox_unfinished": "SELECT count(*) FROM outbox WHERE completed_at IS NULL",
    "tables_with_tenant_id_without_forced_rls": """
        SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r'
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                      AND NOT a.attisdropped)
          AND NOT (c.relrowsecurity AND c.relforcerowsecurity)""",
}
WINDOW_PROBES: dict[str, str] = {
    "perf_composed_llm_calls": """
        SELECT count(*) FROM llm_api_calls
        WHERE created_at BETWEEN %(start)s AND %(end)s AND tenant_id = ANY(%(tenants)s::uuid[])
          AND status = 'succeeded' AND provider_attempted""",
    "perf_window_events": "SELECT count(*) FROM attribution_events WHERE received_at BETWEEN %(start)s AND %(end)s",
}
WINDOW_OUTCOMES = """
    SELECT status || coalesce(':' || coalesce(blocked_reason, failure_reason), '')
           || CASE WHEN provider_attempted THEN '' ELSE ' (no provider call)' END, count(*)
    FROM llm_api_calls
    WHERE created_at BETWEEN %(start)s AND %(end)s AND tenant_id = ANY(%(tenants)s::uuid[])
    GROUP BY 1 ORDER BY 1"""
# Each check: probe name -> the value it must have (what a healthy, finished run looks like).
CHECKS = {
    "llm_duplicate_ledger_rows": 0,
    "llm_budget_periods_over_limit": 0,
    "llm_succeeded_without_distillation": 0,
    "tables_with_tenant_id_without_forced_rls": 0,
}
TABLE_CSVS: dict[str, str] = {
    "phase8_llm_outcomes.csv": """
        SELECT endpoint, status, coalesce(blocked_reason, failure_reason, '') AS reason, count(*) AS calls,
               count(*) FILTER (WHERE was_cached) AS cache_hits,
               count(*) FILTER (WHERE provider_attempted) AS provider_attempts,
               round(sum(cost_cents), 4) AS cost_cents,
               round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::numeric, 3) AS p50_latency_ms
        FROM llm_api_calls GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
    "phase8_topology_counts.csv": """
        SELECT relname AS table_name, n_live_tup AS live_rows, n_tup_ins AS inserted, n_tup_upd AS updated,
               n_tup_del AS deleted
        FROM pg_stat_user_tables ORDER BY relname""",
    "phase8_pg_snapshot.csv": """
        SELECT 'database' AS scope, datname AS name, xact_commit::text AS commits, xact_rollback::text AS rollbacks,
               deadlocks::text AS deadlocks, numbackends::text AS connections, temp_bytes::text AS temp_bytes
        FROM pg_stat_database WHERE datname = current_database()
        UNION ALL
        SELECT 'connections', coalesce(usename, '(background)') || '/' || coalesce(state, 'none'), '', '', '',
               count(*)::text, ''
        FROM pg_stat_activity WHERE datname = current_database() GROUP BY usename, state
        UNION ALL
        SELECT 'setting', name, setting, '', '', '', '' FROM pg_settings
        WHERE name IN ('max_connections', 'shared_buffers', 'server_version', 'synchronous_commit')""",
}


def read_window(path: Path, llm_load: Path | None) -> dict[str, Any]:
    """The ingestion window, and the tenants whose LLM calls count in it (none without a load result)."""
    window = json.loads(path.read_text()).get("window") or {}
    if not {"started_at", "finished_at"} <= set(window):
        raise ValueError(f"{path} records no window (started_at, finished_at)")
    tenant = json.loads(llm_load.read_text()).get("tenant_id") if llm_load and llm_load.exists() else None
    return {"start": window["started_at"], "end": window["finished_at"], "tenants": [tenant] if tenant else []}


def collect(dsn: str, out_dir: Path, window: dict[str, str] | None) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    probes: dict[str, Any] = {}
    with psycopg.connect(sync_dsn(dsn), connect_timeout=10) as conn:
        conn.read_only = True
        for name, sql in SCALAR_PROBES.items():
            probes[name] = conn.execute(sql).fetchone()[0]  # type: ignore[index]
        if window:
            for name, sql in WINDOW_PROBES.items():
                probes[name] = conn.execute(sql, window).fetchone()[0]  # type: ignore[index]
            probes["perf_composed_llm_outcomes"] = dict(conn.execute(WINDOW_OUTCOMES, window).fetchall())
        for filename, sql in TABLE_CSVS.items():
            write_csv(conn.execute(sql), out_dir / filename)
    failed = {name: probes[name] for name, want in CHECKS.items() if probes[name] != want}
    return {"probes": probes, "window": window, "checks": CHECKS, "failed_checks": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=env_default("OPS_DATABASE_URL"), help="ops_reader DSN ($OPS_DATABASE_URL)")
    parser.add_argument("--artifact-dir", type=Path, required=True, help="files go to <dir>/sql/")
    parser.add_argument("--window-from", type=Path, help="ingestion result JSON whose window to probe")
    parser.add_argument("--llm-load-from", type=Path, help="LLM background load result JSON: whose calls count")
    parser.add_argument("--require-composed", action="store_true", help="fail when perf_composed_llm_calls is 0")
    args = parser.parse_args(argv)
    if not args.dsn:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no DSN: pass --dsn or set OPS_DATABASE_URL")
    if args.require_composed and not args.window_from:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "--require-composed needs --window-from")
    try:
        window = read_window(args.window_from, args.llm_load_from) if args.window_from else None
        result = collect(args.dsn, args.artifact_dir / "sql", window)
    except (OSError, ValueError) as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, str(exc))
    except psycopg.Error as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"probe failed: {redact_dsn(str(exc).splitlines()[0])}")
    if args.require_composed and not result["probes"]["perf_composed_llm_calls"]:
        result["failed_checks"]["perf_composed_llm_calls"] = 0
    result["status"] = "failed" if result["failed_checks"] else "passed"
    emit(result, args.artifact_dir / "sql" / "phase8_sql_probe_summary.json")
    return ExitCode.GATE_FAILED if result["failed_checks"] else ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
