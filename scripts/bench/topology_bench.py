"""Benchmark the topology: bring-up time and the worker probe round trip through the PostgreSQL broker.

    python -m scripts.bench.topology_bench [--probes 200] [--output artifacts/bench/topology.json]

The probe latency is reported next to a same-run baseline (GET /health/live on the same api), so
the ratio says what the broker round trip costs on top of plain HTTP on this machine today.
Exit 1 when a figure misses its target (TARGETS).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from scripts.harness import EXIT_CODES_HELP, REPO_ROOT, ExitCode, emit
from scripts.topology import Topology, TopologyConfig, TopologyError

TARGETS = {"up_s": 15.0, "worker_probe_p50_ms": 100.0}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def verdict(result: dict[str, Any], targets: dict[str, float]) -> ExitCode:
    """Record whether every figure is strictly below its target; a miss is a failed gate, not a note."""
    result["within_targets"] = all(result[key] < bound for key, bound in targets.items())
    return ExitCode.PASS if result["within_targets"] else ExitCode.GATE_FAILED


def time_requests(client: httpx.Client, path: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:200]}")
        samples.append(elapsed)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "artifacts" / "bench" / "topology.json")
    args = parser.parse_args(argv)
    config = TopologyConfig(artifact_dir=args.output.parent / "topology-run", name="bench")
    try:
        with Topology(config) as topo, httpx.Client(base_url=topo.api_url, timeout=15) as client:
            time_requests(client, "/health/worker?fresh=true", 10)  # warm both paths
            probe = time_requests(client, "/health/worker?fresh=true", args.probes)
            live = time_requests(client, "/health/live", args.probes)
            up_s = topo.timings["up_s"]
            phases = {k: v for k, v in topo.timings.items() if k != "up_s"}
    except (TopologyError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    result = {
        "name": "topology",
        "up_s": up_s,
        "up_phases_s": phases,
        "probes": args.probes,
        "worker_probe_p50_ms": percentile(probe, 50),
        "worker_probe_p99_ms": percentile(probe, 99),
        "worker_probe_mean_ms": round(statistics.fmean(probe), 2),
        "baseline_http_live_p50_ms": percentile(live, 50),
        "probe_over_baseline_p50_ratio": round(percentile(probe, 50) / max(percentile(live, 50), 0.01), 1),
        "targets": TARGETS,
    }
    code = verdict(result, TARGETS)
    emit(result, args.output)
    return code


if __name__ == "__main__":
    sys.exit(main())
