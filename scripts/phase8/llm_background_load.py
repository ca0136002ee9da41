"""LLM task traffic through the api, meant to run while ingestion under fire does (EG8.5).

    python scripts/phase8/llm_background_load.py --rate 2 --duration 300 --stop-file F [--output FILE]

Provisions a fresh tenant (runtime identity), then requests the four LLM task types round-robin
at a fixed rate through ``POST /api/v1/llm/{task_type}`` (open loop, like the ingestion
generator), in slices of a few seconds until ``--duration`` has passed or ``--stop-file``
exists (how the closure pack ends it when ingestion is done). Afterwards it waits until the
worker has ledgered every accepted task and reports the ledger rows by outcome. The recorded
``window`` (UTC) is what EG8.5 compares with the ingestion window. API URL and DSN default to
$E2E_API_BASE_URL and $B07_P4_RUNTIME_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.tenants.service import ProvisionedTenant
from scripts.harness import EXIT_CODES_HELP, ExitCode, emit
from scripts.r3 import database
from scripts.r3.openloop import Outcome, Shot, answer_counts, fire, latency_histogram, percentiles
from scripts.r3.target import add_target_arguments, require_target, run_or_fail

SLICE_S = 5.0  # how often the stop file is looked at
TASK_TYPES = ("route", "explanation", "investigation", "budget_optimization")
LEDGER_SQL = text(
    "SELECT status, coalesce(blocked_reason, failure_reason, '') AS reason, count(*) FROM llm_api_calls GROUP BY 1, 2"
)


def task_shot(tenant: ProvisionedTenant, run_tag: str) -> Any:
    headers = {"Authorization": f"Bearer {tenant.api_key}", "content-type": "application/json"}

    def shot(index: int) -> Shot:
        task = TASK_TYPES[index % len(TASK_TYPES)]
        # A question of its own per request: repeated ones are answered from the cache, which proves
        # nothing about the provider path EG8.5 is about.
        body = {"request_id": f"bg-{run_tag}-{index}", "question": f"background question {run_tag}-{index} for {task}"}
        return Shot("POST", f"/api/v1/llm/{task}", task, json.dumps(body).encode(), headers)

    return shot


def ledger(engine: Engine, tenant: ProvisionedTenant) -> dict[str, int]:
    with tenant_transaction_sync(tenant.context, engine) as conn:
        rows = conn.execute(LEDGER_SQL).all()
    return {f"{status}:{reason}" if reason else status: int(count) for status, reason, count in rows}


def finished_calls(rows: dict[str, int]) -> int:
    """Ledger rows with an outcome (everything but ``pending``)."""
    return sum(count for key, count in rows.items() if not key.startswith("pending"))


def wait_ledgered(engine: Engine, tenant: ProvisionedTenant, expected: int, timeout_s: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = ledger(engine, tenant)
        if finished_calls(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    engine = database.runtime_engine(args.dsn)
    run_tag = uuid.uuid4().hex[:10]
    tenant = database.provision_tenants(engine, 1, f"llm-bg-{run_tag}")[0]
    started_at = datetime.now(UTC).isoformat()
    started = time.monotonic()
    outcomes: list[Outcome] = []
    while time.monotonic() - started < args.duration and not (args.stop_file and args.stop_file.exists()):
        slice_s = min(SLICE_S, args.duration - (time.monotonic() - started))
        shot = task_shot(tenant, f"{run_tag}-{len(outcomes)}")
        outcomes += asyncio.run(
            fire(args.base_url, shot, rate=args.rate, duration_s=max(slice_s, 1 / args.rate))
        ).outcomes
    finished_at = datetime.now(UTC).isoformat()
    accepted = sum(1 for o in outcomes if o.status in (200, 202))
    rows = wait_ledgered(engine, tenant, accepted, args.settle_timeout)
    ledgered = finished_calls(rows)
    return {
        "status": "passed" if outcomes and accepted == len(outcomes) and ledgered >= accepted else "failed",
        "tenant_id": str(tenant.tenant_id),
        "window": {"started_at": started_at, "finished_at": finished_at},
        "rate": args.rate,
        "duration_s": args.duration,
        "requests": len(outcomes),
        "accepted": accepted,
        "answers": answer_counts(outcomes),
        "ledger": rows,
        "ledgered": ledgered,
        "latency_ms": percentiles(latency_histogram(outcomes)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_target_arguments(parser, "the tenant and the ledger")
    parser.add_argument("--rate", type=float, default=2.0, help="LLM task requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="longest run of traffic (s)")
    parser.add_argument("--stop-file", type=Path, help="stop (at the next slice) once this file exists")
    parser.add_argument("--settle-timeout", type=float, default=60.0, help="seconds to wait for the ledger")
    parser.add_argument("--output", type=Path, help="also write the JSON result here")
    args = parser.parse_args(argv)
    require_target(args)
    result = run_or_fail(run, args)
    emit(result, args.output)
    return ExitCode.PASS if result["status"] == "passed" else ExitCode.GATE_FAILED


if __name__ == "__main__":
    sys.exit(main())
