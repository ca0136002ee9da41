"""Benchmark the LLM boundary against a direct call to the same (mock) provider, in one run.

    python -m scripts.bench.llm_boundary_bench [--calls 200] [--output artifacts/bench/llm_boundary.json]

overhead = a boundary call's wall time minus the provider latency recorded in its own ledger row:
everything the boundary adds (router, claim, controls, cache lookup, breaker, settle, distillation).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import text

from app.core.db import tenant_transaction_sync
from app.services.tenants import create_tenant
from scripts.bench.llm_calls import mock_boundary
from scripts.bench.topology_bench import percentile
from scripts.harness import EXIT_CODES_HELP, REPO_ROOT, ExitCode, emit
from scripts.topology import Topology, TopologyConfig, TopologyError

TARGETS = {"overhead_p50_ms": 5.0, "overhead_p99_ms": 25.0, "cache_hit_p99_ms": 20.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "artifacts" / "bench" / "llm_boundary.json")
    args = parser.parse_args(argv)
    config = TopologyConfig(artifact_dir=args.output.parent / "llm-boundary-run", name="bench-llm", stop_grace_s=2)
    try:
        with Topology(config) as topo:
            assert topo.dsns is not None
            gate = mock_boundary(topo.dsns.runtime_sync, topo.mock_url)
            assert gate.engine is not None
            with gate.engine.begin() as conn:
                tenant = create_tenant(conn, "bench", user_id="bench")
            model = gate.config.models[next(iter(gate.config.models))]
            direct, total, cached = [], {}, []
            for n in range(args.calls):  # the baseline: the provider without the boundary
                direct.append(gate.provider.complete(model, f"direct {n}", max_tokens=200, timeout_s=5).latency_ms)
            for n in range(args.calls):
                started = time.perf_counter()
                outcome = gate.call(tenant.context, "route", f"bench-miss-{n}", f"bench question {n}")
                total[outcome.call_id] = (time.perf_counter() - started) * 1000
            for n in range(args.calls):
                started = time.perf_counter()
                gate.call(tenant.context, "route", f"bench-hit-{n}", "bench question 0")
                cached.append((time.perf_counter() - started) * 1000)
            with tenant_transaction_sync(tenant.context, gate.engine) as conn:
                provider_ms = {
                    str(r.id): float(r.latency_ms)
                    for r in conn.execute(
                        text("SELECT id, latency_ms FROM llm_api_calls WHERE request_id LIKE 'bench-miss-%'")
                    )
                }
    except (TopologyError, AssertionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    overhead = [total[call] - provider_ms[call] for call in total]
    result = {
        "name": "llm_boundary",
        "calls": args.calls,
        "direct_provider_p50_ms": percentile(direct, 50),
        "direct_provider_p99_ms": percentile(direct, 99),
        "boundary_total_p50_ms": percentile(list(total.values()), 50),
        "overhead_p50_ms": percentile(overhead, 50),
        "overhead_p99_ms": percentile(overhead, 99),
        "overhead_mean_ms": round(statistics.fmean(overhead), 2),
        "cache_hit_p50_ms": percentile(cached, 50),
        "cache_hit_p99_ms": percentile(cached, 99),
        "overhead_over_direct_p50_ratio": round(percentile(overhead, 50) / max(percentile(direct, 50), 0.01), 2),
        "targets": TARGETS,
        "run": uuid.uuid4().hex[:8],
    }
    result["within_targets"] = all(result[key] < bound for key, bound in TARGETS.items())
    emit(result, args.output)
    return ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
