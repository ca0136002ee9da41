"""Where an LLM boundary call spends its database time, function by function.

    python -m scripts.bench.function_costs [--calls 300] [--warmup 20] [--output artifacts/bench/function_costs.json]

Brings up its own topology, turns on PostgreSQL's per-function statistics (``track_functions =
'all'``, as the bootstrap superuser of that throwaway cluster), stops the api and worker (the
isolated condition of ``llm_boundary_bench``), makes ``--calls`` provider-backed boundary calls for
one tenant and reports, per server-side function, the calls and the time (total and self, ms) per
boundary call from ``pg_stat_user_functions``.

What it answers: how many times one boundary call verifies the signed tenant context
(``app_current_tenant``/``app_current_user``/``app_current_context``: the row-level security
policies call them once per statement and expression, the LLM functions in their bodies) and what
share of the boundary's database time that is. Turning the statistics on adds a little timing to
every function call, so read the shares, not the absolute times, against ``llm_boundary_bench``.

Exit 0 when it measured, 2 when the topology could not be brought up.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from app.core.settings import to_sync_url
from app.tenants.service import create_tenant
from scripts.bench.llm_calls import mock_boundary
from scripts.bench.peers import run_identity
from scripts.harness import EXIT_CODES_HELP, REPO_ROOT, ExitCode, emit
from scripts.topology import Topology, TopologyConfig, TopologyError

CONTEXT_FUNCTIONS = ("app_current_tenant", "app_current_user", "app_current_context")
FUNCTION_STATS = text(
    "SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions ORDER BY total_time DESC"
)
# Statistics reach the shared view when a backend goes idle (at most every PGSTAT_MIN_INTERVAL, 1 s).
STATS_FLUSH_S = 1.5


def per_call(rows: list[Any], calls: int) -> dict[str, dict[str, float]]:
    return {
        r.funcname: {
            "calls": round(r.calls / calls, 2),
            "total_ms": round(r.total_time / calls, 3),
            "self_ms": round(r.self_time / calls, 3),
        }
        for r in rows
        if r.calls
    }


def summarize(functions: dict[str, dict[str, float]]) -> dict[str, float]:
    """The context verifications per boundary call and their share of the time in the LLM functions
    (the top-level ones: ``llm_route_admit`` and ``llm_settle`` hold every other call)."""
    verifications = sum(functions.get(name, {}).get("calls", 0.0) for name in CONTEXT_FUNCTIONS)
    verifying_ms = sum(functions.get(name, {}).get("self_ms", 0.0) for name in CONTEXT_FUNCTIONS)
    top_ms = sum(functions.get(name, {}).get("total_ms", 0.0) for name in ("llm_route_admit", "llm_settle"))
    return {
        "context_verifications_per_call": round(verifications, 2),
        "verification_ms_per_call": round(verifying_ms, 3),
        "llm_functions_ms_per_call": round(top_ms, 3),
        "verification_share": round(verifying_ms / top_ms, 3) if top_ms else 0.0,
    }


def measure(calls: int, warmup: int, artifact_dir: Path) -> dict[str, Any]:
    config = TopologyConfig(artifact_dir=artifact_dir, name="bench-function-costs", stop_grace_s=2)
    with Topology(config) as topo:
        assert topo.dsns is not None
        # in the run's database: the statistics and policies are per database
        superuser = create_engine(to_sync_url(topo.superuser_url()), isolation_level="AUTOCOMMIT")
        try:
            with superuser.connect() as conn:
                conn.execute(text(f"ALTER DATABASE {topo.database} SET track_functions = 'all'"))
            gate = mock_boundary(topo.dsns.runtime_sync, topo.mock_url)  # new connections: the setting holds
            assert gate.engine is not None
            with gate.engine.begin() as conn:
                tenant = create_tenant(conn, "function-costs", user_id="bench")
            for service in ("api", "worker"):
                topo.stop_service(service)
            for n in range(warmup):
                gate.call(tenant.context, "route", f"warmup-{n}", f"warm-up question {n}")
            gate.engine.dispose()  # the warm-up's statistics leave with its connections
            time.sleep(STATS_FLUSH_S)
            with superuser.connect() as conn:
                conn.execute(text("SELECT pg_stat_reset()"))
            started = time.perf_counter()
            for n in range(calls):
                gate.call(tenant.context, "route", f"measured-{n}", f"question {n}")
            wall_ms = (time.perf_counter() - started) / calls * 1000
            gate.engine.dispose()
            time.sleep(STATS_FLUSH_S)
            with superuser.connect() as conn:
                rows = list(conn.execute(FUNCTION_STATS).all())
        finally:
            superuser.dispose()
    functions = per_call(rows, calls)
    return {"wall_ms_per_call": round(wall_ms, 2), "functions": functions, **summarize(functions)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300, help="measured boundary calls")
    parser.add_argument("--warmup", type=int, default=20, help="calls made first and not counted")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "artifacts" / "bench" / "function_costs.json")
    args = parser.parse_args(argv)
    try:
        measured = measure(args.calls, args.warmup, args.output.parent / "function-costs-run")
    except (TopologyError, AssertionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    result = {
        "name": "function_costs",
        "command": "python -m scripts.bench.function_costs",
        **run_identity(),
        "condition": "isolated: api and worker stopped, one caller, provider-backed successes of one tenant",
        "calls": args.calls,
        **measured,
    }
    emit(result, args.output)
    return ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
