"""The LLM boundary against its peers, in one run, against the same mock provider.

    nox -s bench_peers [-- --calls 400 --rounds 8 --concurrency 1,8 --summary docs/perf/DATE-bench-peers.json]
    (which runs python -m scripts.bench.peers in a virtualenv of its own: the lock plus LiteLLM)

Callers, each timed per call (wall time, ms):

- ``direct``: the request the boundary's provider client sends, posted to the mock with httpx from
  threads (the boundary's transport), and ``direct_async``: the same from asyncio tasks (LiteLLM's).
- ``litellm``: ``litellm.acompletion`` at the mock's OpenAI-compatible chat-completions route
  (``scripts/bench/peer_litellm.py``): no budgets, no router, no cache.
- ``boundary``: ``Boundary.call`` with every control on (router, idempotency claim, kill switch,
  hourly shutoff, budget reservation, cache lookup, breaker, settle and ledger), unique prompts so
  every call reaches the provider, consecutive calls spread over ``--tenants`` tenants.

Conditions, recorded in the output: a live topology (embedded PostgreSQL, mock_platform, and the
api and worker running: the worker polls its broker and the relay the outbox, on the same cores);
each caller with 1 and with 8 concurrent callers (threads for sync callers, tasks on one event loop
for async ones); ``--calls`` per caller and concurrency in each round; rounds in pairs, an order of
callers then the same reversed, rotated by one step per pair, so no caller always runs first, last,
or right after the same neighbour.

Overhead is a caller's percentile minus the same percentile of the direct call of its own
transport at the same concurrency (the boundary against ``direct``, LiteLLM against
``direct_async``), pooled over rounds and per round (their spread): what each library adds to
the plain call it makes, not the difference between threads and an event loop. Both direct calls'
latencies are in the output, so the cross comparison can be read too. The target (issue 19):
the boundary's overhead p50 and p99 at or below LiteLLM's, at every concurrency. Exit 1 when it
is missed, 3 when any call failed (the run measured something else), 2 on an environment error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.core.tenancy import TenantContext
from app.llm.boundary import Boundary
from app.tenants.service import create_tenant
from scripts.bench.llm_calls import (
    AsyncCall,
    SyncCall,
    Timed,
    boundary_caller,
    direct_async_caller,
    direct_caller,
    mock_boundary,
    timed_tasks,
    timed_threads,
)
from scripts.bench.topology_bench import percentile
from scripts.harness import EXIT_CODES_HELP, REPO_ROOT, ExitCode, emit
from scripts.topology import Topology, TopologyConfig, TopologyError

OURS, PEER = "boundary", "litellm"
BASELINE = {"boundary": "direct", "litellm": "direct_async"}  # each caller against its own transport
QUANTILES = (50, 99)


@dataclass(frozen=True)
class Caller:
    """A named caller: a sync one runs on threads, an async one as tasks on the run's event loop."""

    name: str
    sync: SyncCall | None = None
    aio: AsyncCall | None = None


# -- what a run measures ------------------------------------------------------------------------


def order_for(round_number: int, names: Sequence[str]) -> list[str]:
    """Rounds go in pairs: one order, then the same backwards, so within each pair every caller
    precedes every other once and follows it once; each pair rotates the order by one more step, so
    over 2 x len(names) rounds each caller takes each position twice."""
    shift = (round_number // 2) % len(names)
    rotated = [*names[shift:], *names[:shift]]
    return rotated[::-1] if round_number % 2 else rotated


def requests_for(tag: str, caller: str, round_number: int, concurrency: int, calls: int) -> list[tuple[str, str]]:
    """(request id, prompt): the prompt is the same for every caller at this position (same answer
    from the mock), and new to the boundary's cache; the request id is the caller's own."""
    return [
        (f"{tag}-{caller}-{round_number}-{concurrency}-{n}", f"peer question {tag} r{round_number} c{concurrency} {n}")
        for n in range(calls)
    ]


def run_batch(
    caller: Caller, requests: list[tuple[str, str]], concurrency: int, loop: asyncio.AbstractEventLoop
) -> Timed:
    if caller.aio is not None:
        return timed_tasks(loop, caller.aio, requests, concurrency)
    assert caller.sync is not None, caller.name
    return timed_threads(caller.sync, requests, concurrency)


def measure(
    callers: list[Caller],
    concurrencies: Sequence[int],
    rounds: int,
    calls: int,
    warmup: int,
    loop: asyncio.AbstractEventLoop,
    tag: str,
) -> dict[int, dict[str, list[Timed]]]:
    """Per concurrency and caller, one ``Timed`` per round. Each caller first makes ``warmup`` calls
    at each concurrency (connections, clients, imports), not counted."""
    names = [caller.name for caller in callers]
    by_name = {caller.name: caller for caller in callers}
    for concurrency in concurrencies:
        for caller in callers:
            run_batch(caller, requests_for(f"{tag}w", caller.name, 0, concurrency, warmup), concurrency, loop)
    measured: dict[int, dict[str, list[Timed]]] = {c: {name: [] for name in names} for c in concurrencies}
    for number in range(rounds):
        for concurrency in concurrencies:
            for name in order_for(number, names):
                batch = requests_for(tag, name, number, concurrency, calls)
                measured[concurrency][name].append(run_batch(by_name[name], batch, concurrency, loop))
    return measured


# -- what the numbers say -----------------------------------------------------------------------


def latency_summary(rounds: list[list[float]]) -> dict[str, Any]:
    pooled = [ms for samples in rounds for ms in samples]
    summary: dict[str, Any] = {"calls": len(pooled)}
    for q in QUANTILES:
        summary[f"p{q}_ms"] = percentile(pooled, q)
        summary[f"p{q}_ms_by_round"] = [percentile(samples, q) for samples in rounds]
    return summary


def overhead_summary(caller: list[list[float]], direct: list[list[float]], baseline: str) -> dict[str, Any]:
    """The caller's percentile minus the direct call's, pooled and per round (the same round's direct)."""
    pooled_caller = [ms for samples in caller for ms in samples]
    pooled_direct = [ms for samples in direct for ms in samples]
    summary: dict[str, Any] = {"baseline": baseline}
    for q in QUANTILES:
        by_round = [round(percentile(c, q) - percentile(d, q), 2) for c, d in zip(caller, direct, strict=True)]
        summary[f"p{q}_ms"] = round(percentile(pooled_caller, q) - percentile(pooled_direct, q), 2)
        summary[f"p{q}_ms_by_round"] = by_round
        summary[f"p{q}_ms_spread"] = {
            "min": min(by_round),
            "median": round(statistics.median(by_round), 2),
            "max": max(by_round),
        }
    return summary


def summarize(measured: dict[int, dict[str, list[Timed]]]) -> dict[str, Any]:
    """Latency per caller, overhead per non-direct caller, and every failure, per concurrency."""
    out: dict[str, Any] = {}
    for concurrency, by_caller in measured.items():
        samples = {name: [t.samples for t in timed] for name, timed in by_caller.items()}
        failures = {name: sum(t.failures for t in timed) for name, timed in by_caller.items()}
        first = {
            name: next((t.first_failure for t in timed if t.first_failure), None) for name, timed in by_caller.items()
        }
        out[str(concurrency)] = {
            "latency": {name: latency_summary(rounds) for name, rounds in samples.items() if any(rounds)},
            "overhead": {
                name: overhead_summary(samples[name], samples[baseline], baseline)
                for name, baseline in BASELINE.items()
                if name in samples and baseline in samples and all(samples[name]) and all(samples[baseline])
            },
            "failures": failures,
            "first_failure": {name: text for name, text in first.items() if text},
        }
    return out


def verdict(result: dict[str, Any]) -> ExitCode:
    """Exit 3 if any call failed (the figures describe other work); else the target: our overhead p50
    and p99 at or below the peer's at every concurrency measured. Records ``verdict`` in the result."""
    by_concurrency: dict[str, Any] = result["by_concurrency"]
    failed = {c: {k: v for k, v in s["failures"].items() if v} for c, s in by_concurrency.items()}
    failed = {c: f for c, f in failed.items() if f}
    checks: dict[str, Any] = {}
    for concurrency, section in by_concurrency.items():
        overhead = section["overhead"]
        for q in QUANTILES:
            key = f"p{q}_ms"
            if OURS not in overhead or PEER not in overhead:
                checks[f"c{concurrency}.{key}"] = {"ok": False, "why": "a caller was not measured"}
                continue
            ours, theirs = overhead[OURS][key], overhead[PEER][key]
            checks[f"c{concurrency}.{key}"] = {"ours": ours, PEER: theirs, "ok": ours <= theirs}
    met = bool(checks) and all(check["ok"] for check in checks.values())
    result["verdict"] = {
        "target": f"{OURS} overhead p50 and p99 <= {PEER} overhead, at every concurrency",
        "checks": checks,
        "met": met and not failed,
        "invalid_measurement": failed or None,
    }
    if failed:
        return ExitCode.INVALID_MEASUREMENT
    return ExitCode.PASS if met else ExitCode.GATE_FAILED


# -- the run ------------------------------------------------------------------------------------


def run_identity() -> dict[str, Any]:
    """When, on what, from which commit: what every published figure carries."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else "unknown"

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def conditions(args: argparse.Namespace, peer_version: str) -> dict[str, Any]:
    return {
        "topology": "embedded PostgreSQL, mock_platform, api and worker running (idle: the worker polls "
        "its PostgreSQL broker, the relay the outbox), all on this machine's cores with the callers",
        "provider": "mock_platform's OpenAI-compatible chat-completions route, one process, for every caller",
        "callers": {
            "direct": "httpx.Client POST of the boundary's own request, from threads",
            "direct_async": "httpx.AsyncClient POST of the same request, from tasks on one event loop",
            "litellm": f"litellm {peer_version} acompletion (openai/<model>, api_base at the mock), tasks on one "
            "event loop, no budgets, router, cache or callbacks",
            "boundary": "Boundary.call, every control on, cache misses only, from threads; "
            f"calls spread over {args.tenants} tenant(s)",
        },
        "concurrency": args.concurrency,
        "calls_per_caller_per_round": args.calls,
        "rounds": args.rounds,
        "warmup_calls": args.warmup,
        "order": "rounds in pairs (an order, then the same reversed), rotated by one step per pair",
        "overhead": "caller percentile minus the same percentile of the direct call of its own transport, "
        "same concurrency; pooled and per round",
    }


def compact(result: dict[str, Any]) -> dict[str, Any]:
    """The run in a few lines, for docs/perf/: identity, conditions, each caller's overhead (pooled,
    and its spread over rounds) and the direct call's latency, per concurrency, and the verdict."""
    keep = ("command", "date", "git_commit", "git_dirty", "cpu_count", "load_average_at_start", "python", "model")
    figures = {}
    for concurrency, section in result["by_concurrency"].items():
        figures[f"{concurrency}_callers"] = {
            "direct_latency_ms": {
                name: {"p50": section["latency"][name]["p50_ms"], "p99": section["latency"][name]["p99_ms"]}
                for name in BASELINE.values()
                if name in section["latency"]
            },
            "overhead_ms": {
                name: {
                    "vs": summary["baseline"],
                    "p50": summary["p50_ms"],
                    "p99": summary["p99_ms"],
                    "p50_over_rounds": summary["p50_ms_spread"],
                    "p99_over_rounds": summary["p99_ms_spread"],
                }
                for name, summary in section["overhead"].items()
            },
            "failures": section["failures"],
        }
    return {
        "made_by": "scripts/bench/peers.py --summary (nox -s bench_peers)",
        **{key: result[key] for key in keep if key in result},
        "conditions": result["conditions"],
        "figures": figures,
        "verdict": result["verdict"],
    }


def concurrency_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers, e.g. 1,8")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=400, help="calls per caller, concurrency and round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=8,
        help="rounds (an even number keeps the order balanced; 8 rotates 4 callers fully)",
    )
    parser.add_argument("--warmup", type=int, default=40, help="calls per caller and concurrency first, not counted")
    parser.add_argument("--concurrency", type=concurrency_list, default=[1, 8], help="e.g. 1,8")
    parser.add_argument("--tenants", type=int, default=8, help="tenants the boundary's calls rotate over")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "artifacts" / "bench" / "peers.json")
    parser.add_argument("--summary", type=Path, help="also write the run's compact summary here (docs/perf/...)")
    args = parser.parse_args(argv)
    try:
        from scripts.bench import peer_litellm  # only in the bench_peers virtualenv
    except ImportError as exc:
        print(f"error: LiteLLM is not installed here ({exc}); run nox -s bench_peers", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    identity = run_identity()
    config = TopologyConfig(artifact_dir=args.output.parent / "peers-run", name="bench-peers", stop_grace_s=2)
    loop = asyncio.new_event_loop()
    try:
        with Topology(config) as topo, httpx.Client(base_url=topo.mock_url) as sync_client:
            async_client = httpx.AsyncClient(base_url=topo.mock_url)  # closed on the run's loop below
            assert topo.dsns is not None
            gate: Boundary = mock_boundary(topo.dsns.runtime_sync, topo.mock_url, pool_size=max(args.concurrency))
            assert gate.engine is not None
            with gate.engine.begin() as conn:
                tenants: list[TenantContext] = [
                    create_tenant(conn, f"peers-{n}", user_id="bench").context for n in range(args.tenants)
                ]
            model = gate.config.models[next(iter(gate.config.models))]
            callers = [
                Caller("direct", sync=direct_caller(sync_client, gate.config, model)),
                Caller("direct_async", aio=direct_async_caller(async_client, gate.config, model)),
                Caller(PEER, aio=peer_litellm.litellm_caller(topo.mock_url, gate.config, model)),
                Caller(OURS, sync=boundary_caller(gate, tenants)),
            ]
            measured = measure(callers, args.concurrency, args.rounds, args.calls, args.warmup, loop, "peers")
            loop.run_until_complete(async_client.aclose())
    except (TopologyError, AssertionError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    finally:
        loop.close()
    result: dict[str, Any] = {
        "name": "bench_peers",
        "command": "nox -s bench_peers",
        **identity,
        "model": model,
        "conditions": conditions(args, peer_litellm.version()),
        "by_concurrency": summarize(measured),
    }
    code = verdict(result)
    emit(result, args.output)
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(compact(result), indent=2, sort_keys=True) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
