"""Fault scenarios under load, each judged by counting: nothing acknowledged may be lost or doubled.

    python scripts/faults/run_faults.py [--artifact-dir artifacts/faults] [--rate 30] [--duration 20]
                                        [--scenario NAME ...]

Brings up its own embedded topology (short breaker and redispatch timers, so recovery is visible
within a run), runs the scenarios in order (worker kill -9, api kill -9, PostgreSQL restart, LLM
provider error/hang/rate-limit), tears everything down, and writes faults_summary.json: one entry
per scenario with acknowledged, persisted, lost, duplicated, recovery_s and status. The LLM entry
also shows, per fault, whether the mock took it and the ledger outcomes it left; a fault without
its outcomes fails the scenario.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repo root, when run as a file

from scripts.faults.scenarios import SCENARIOS
from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, redact_dsn
from scripts.r3 import database
from scripts.topology import Topology, TopologyConfig, TopologyError

FAULT_ENV = {
    "LLM_BREAKER_OPEN_S": "3",  # the breaker's cool-down, so recovery fits in a run
    "LLM_TIMEOUT_S": "2",  # the 5 s hang is a timeout
    "OUTBOX_REDISPATCH_AFTER_S": "10",  # work whose message died with the worker is sent again
}
RECOVERY_LIMITS_S = {"worker_kill_9": 30.0, "postgres_restart": 60.0}


def run(args: argparse.Namespace) -> dict[str, Any]:
    artifact_dir: Path = args.artifact_dir.resolve()
    artifact_dir.mkdir(parents=True, exist_ok=True)
    config = TopologyConfig(artifact_dir=artifact_dir, name="faults", extra_env=FAULT_ENV, stop_grace_s=3.0)
    results = []
    started = time.monotonic()
    with Topology(config) as topology:
        assert topology.dsns is not None  # set by up()
        engine = database.runtime_engine(topology.dsns.runtime_sync)
        for name in args.scenario or list(SCENARIOS):
            print(f"[faults] {name} ...", file=sys.stderr, flush=True)
            result = SCENARIOS[name](topology, engine, args.rate, args.duration)
            limit = RECOVERY_LIMITS_S.get(name)
            if limit is not None and (result.recovery_s is None or result.recovery_s > limit):
                result.status = "failed"
                result.details["recovery_limit_s"] = limit
            print(f"[faults] {name}: {result.status} {json.dumps(result.as_dict())}", file=sys.stderr, flush=True)
            results.append(result.as_dict())
        engine.dispose()
    summary = {
        "status": "passed" if all(r["status"] == "passed" for r in results) else "failed",
        "rate": args.rate,
        "duration_s": args.duration,
        "acknowledged": sum(r["acknowledged"] for r in results),
        "lost": sum(r["lost"] for r in results),
        "duplicated": sum(r["duplicated"] for r in results),
        "scenarios": results,
        "took_s": round(time.monotonic() - started, 1),
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifact-dir", type=Path, default=Path("artifacts/faults"))
    parser.add_argument("--rate", type=float, default=30.0, help="webhooks per second during each scenario")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per scenario")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="run only these")
    args = parser.parse_args(argv)
    try:
        summary = run(args)
    except TopologyError as exc:
        print(f"error: topology: {redact_dsn(str(exc))}", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    emit(summary, args.artifact_dir / "faults_summary.json")
    return ExitCode.PASS if summary["status"] == "passed" else ExitCode.GATE_FAILED


if __name__ == "__main__":
    sys.exit(main())
