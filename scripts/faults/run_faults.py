"""Fault scenarios under load, each judged by counting: nothing acknowledged may be lost or doubled.

    python scripts/faults/run_faults.py [--artifact-dir artifacts/faults] [--rate RPS] [--duration 20]
                                        [--scenario NAME ...]

Brings up its own embedded topology (short breaker and redispatch timers, so recovery is visible
within a run), runs the loopback scenarios in order (worker kill -9, api kill -9, PostgreSQL
restart, LLM provider error/hang/rate-limit, slowloris: scripts/faults/clients.py, WAL volume
full: scripts/faults/disk.py), then a second topology split across network namespaces
(scripts/topology/netns.py; needs root, skipped with a message otherwise) for the PostgreSQL
crash and the two partitions (scripts/faults/network.py), then a third on RabbitMQ for the broker
restart (scripts/faults/broker.py; skipped with a message where no local broker can be restarted;
PHASE8_BROKER_URL names one). ``--topology compose`` runs the two crash scenarios (``docker kill``
of the worker and of the api container, then a restart) on docker-compose.e2e.yml instead, with the
same load and verdict (``nox -s compose`` runs them after the CI subset). Tears everything down and
writes faults_summary.json: one entry per scenario with the load rate, acknowledged, persisted,
lost, duplicated (also per tenant), recovery_s, its negative control (one acknowledged event
deleted behind the harness's back must fail the verdict) and status. The LLM entry also shows, per
fault, whether the mock took it and the ledger outcomes it left; a fault without its outcomes
fails the scenario.

The webhook rate defaults to half the max sustainable rate of a capacity sweep (``--sweep-file``:
this checkout's own, or a published one), scaled down to this machine by the plain-insert baseline
both measure (scripts/faults/machine.py; ``--no-machine-scale`` keeps it as it is), else the soak's
stated default (scripts/soak: DEFAULT_RPS; a fresh clone, CI's, has no sweep of its own); the LLM
scenario keeps its own task rate (FIXED_RATES). Timing bounds (recovery limits, the partition's 2 s,
slowloris's p99) are judged on whatever machine runs this: a busy shared one can miss them where
counts stay exact.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from scripts.faults import broker
from scripts.faults.clients import slowloris
from scripts.faults.disk import postgres_out_of_disk
from scripts.faults.machine import MachineRate, published_baseline
from scripts.faults.network import NETNS_SCENARIOS
from scripts.faults.scenarios import SCENARIOS, ScenarioResult
from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, git_sha, redact_dsn
from scripts.r3 import database
from scripts.soak.__main__ import SWEEP_FILE, default_rps, half_rate
from scripts.topology import Topology, TopologyConfig, TopologyError
from scripts.topology.compose import ComposeImages, ComposeTopology
from scripts.topology.compose_project import COMPOSE_TUNABLES

FAULT_ENV = {
    "LLM_BREAKER_OPEN_S": "3",  # the breaker's cool-down, so recovery fits in a run
    "LLM_TIMEOUT_S": "2",  # the 5 s hang is a timeout
    "OUTBOX_REDISPATCH_AFTER_S": "10",  # work whose message died with the worker is sent again
}
RECOVERY_LIMITS_S = {"worker_kill_9": 30.0, "postgres_restart": 60.0, "postgres_crash": 60.0, "broker_restart": 60.0}
# The LLM scenario sends LLM tasks, not webhooks: each phase must be ledgered completely before the
# next fault, so it keeps the task rate it was built for rather than the webhook load's.
FIXED_RATES = {"llm_provider_faults": 30.0}
LOOPBACK_SCENARIOS = {**SCENARIOS, "slowloris": slowloris, "postgres_out_of_disk": postgres_out_of_disk}
BROKER_SCENARIOS = {"broker_restart": broker.broker_restart}
ALL_SCENARIOS = {**LOOPBACK_SCENARIOS, **NETNS_SCENARIOS, **BROKER_SCENARIOS}
# What compose mode can do to a container that it does to a native process: kill it and start it again.
COMPOSE_SCENARIOS = ("worker_kill_9", "api_kill_9")


Rate = float | Callable[[Topology, Engine], float]  # a number, or what to measure on the topology (MachineRate)


def run_group(
    names: list[str],
    config: TopologyConfig,
    rate_of: Rate,
    duration_s: float,
    make_topology: Callable[[TopologyConfig], Topology] = Topology,
) -> list[dict[str, Any]]:
    """One topology, the scenarios ``names`` in order on it, each with its recovery limit applied."""
    results = []
    with make_topology(config) as topology:
        assert topology.dsns is not None  # set by up()
        engine = database.runtime_engine(topology.dsns.runtime_sync)
        rate = rate_of(topology, engine) if callable(rate_of) else rate_of
        for name in names:
            print(f"[faults] {name} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            scenario_rate = FIXED_RATES.get(name, rate)
            engine.dispose()  # a scenario before may have restarted the server under our pooled connections
            try:
                result: ScenarioResult = ALL_SCENARIOS[name](topology, engine, scenario_rate, duration_s)
            except Exception as exc:  # one broken scenario must not cost the others their verdicts
                print(redact_dsn(traceback.format_exc()), file=sys.stderr, flush=True)
                result = ScenarioResult(name, 0, 0, 0, 0, None, "failed", {"error": redact_dsn(repr(exc))[:500]})
            limit = RECOVERY_LIMITS_S.get(name)
            if limit is not None and (result.recovery_s is None or result.recovery_s > limit):
                result.status = "failed"
                result.details["recovery_limit_s"] = limit
            result.details.update(rate=scenario_rate, topology=config.name)
            result.details["took_s"] = round(time.monotonic() - started, 1)
            print(f"[faults] {name}: {result.status} {json.dumps(result.as_dict())}", file=sys.stderr, flush=True)
            results.append(result.as_dict())
        engine.dispose()
    return results


def skipped(name: str, why: str) -> dict[str, Any]:
    print(f"[faults] {name}: skipped ({why})", file=sys.stderr, flush=True)
    return {"name": name, "status": "skipped", "why": why, "acknowledged": 0, "lost": 0, "duplicated": 0}


def run_on_rabbitmq(names: list[str], artifact_dir: Path, rate: Rate, duration_s: float) -> list[dict[str, Any]]:
    """The broker scenarios in a topology whose Celery broker is RabbitMQ; skipped where none can be restarted."""
    why = broker.unavailable()
    if why:
        return [skipped(name, why) for name in names]
    with broker.run_vhost() as url:
        env = {**FAULT_ENV, "CELERY_BROKER_URL": url}
        config = TopologyConfig(artifact_dir=artifact_dir / "amqp", name="faults-amqp", extra_env=env, stop_grace_s=3.0)
        return run_group(names, config, rate, duration_s)


def run_on_compose(names: list[str], args: argparse.Namespace, rate: Rate) -> list[dict[str, Any]]:
    """The crash scenarios on docker-compose.e2e.yml: ``docker kill`` instead of SIGKILL to a process."""
    images = ComposeImages(postgres=args.postgres_image, python_base=args.python_base_image, build=not args.no_build)
    env = {name: FAULT_ENV[name] for name in COMPOSE_TUNABLES if name in FAULT_ENV}  # what the file passes through
    config = TopologyConfig(
        artifact_dir=args.artifact_dir.resolve() / "compose", name="faults-compose", extra_env=env, stop_grace_s=3.0
    )
    return run_group(names, config, rate, args.duration, lambda c: ComposeTopology(c, images))


def run(args: argparse.Namespace) -> dict[str, Any]:
    artifact_dir: Path = args.artifact_dir.resolve()
    artifact_dir.mkdir(parents=True, exist_ok=True)
    rate, rate_source = (args.rate, "--rate") if args.rate else default_rps(args.sweep_file)
    published = None if args.rate or args.no_machine_scale else published_baseline(args.sweep_file)
    machine = MachineRate(rate, published) if published and half_rate(args.sweep_file) is not None else None
    rate_of: Rate = machine or rate
    started = time.monotonic()
    if args.topology == "compose":
        results = run_on_compose(args.scenario or list(COMPOSE_SCENARIOS), args, rate_of)
        return summarize(results, rate, rate_source, args, time.monotonic() - started, machine)
    selected = args.scenario or list(ALL_SCENARIOS)
    loopback = [name for name in selected if name in LOOPBACK_SCENARIOS]
    netns = [name for name in selected if name in NETNS_SCENARIOS]
    amqp = [name for name in selected if name in BROKER_SCENARIOS]
    results = []
    if loopback:
        config = TopologyConfig(artifact_dir=artifact_dir, name="faults", extra_env=FAULT_ENV, stop_grace_s=3.0)
        results += run_group(loopback, config, rate_of, args.duration)
    if netns and os.geteuid() != 0:
        results += [skipped(name, "network namespaces need root") for name in netns]
    elif netns:
        config = TopologyConfig(
            artifact_dir=artifact_dir / "netns", name="faults-netns", extra_env=FAULT_ENV, stop_grace_s=3.0, netns=True
        )
        results += run_group(netns, config, rate_of, args.duration)
    if amqp:
        results += run_on_rabbitmq(amqp, artifact_dir, rate_of, args.duration)
    return summarize(results, rate, rate_source, args, time.monotonic() - started, machine)


def summarize(
    results: list[dict[str, Any]],
    rate: float,
    rate_source: str,
    args: argparse.Namespace,
    took_s: float,
    machine: MachineRate | None = None,
) -> dict[str, Any]:
    """faults_summary.json: passed only if something was judged and every judged scenario passed."""
    judged = [r for r in results if r["status"] != "skipped"]
    if machine is not None:
        rate, rate_source = machine.rate or rate, machine.source()
    return {
        "status": "passed" if judged and all(r["status"] == "passed" for r in judged) else "failed",
        "mode": args.topology,
        "git_sha": git_sha(),
        "rate": rate,
        "rate_source": rate_source,
        "machine_baseline": machine.measured if machine else None,
        "duration_s": args.duration,
        "acknowledged": sum(r["acknowledged"] for r in results),
        "lost": sum(r["lost"] for r in results),
        "duplicated": sum(r["duplicated"] for r in results),
        "scenarios": results,
        "took_s": round(took_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifact-dir", type=Path, default=Path("artifacts/faults"))
    parser.add_argument(
        "--rate", type=float, help="webhooks per second during each scenario (default: half the sweep's max)"
    )
    parser.add_argument(
        "--sweep-file",
        type=Path,
        default=SWEEP_FILE,
        help="the capacity sweep whose half is the default rate (e.g. docs/perf/2026-12-06-full-physics-sweep.json)",
    )
    parser.add_argument(
        "--no-machine-scale",
        action="store_true",
        help="run at half the sweep's rate as it is, not scaled down by this machine's plain-insert baseline "
        "against the sweep's (scripts/faults/machine.py)",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per scenario")
    parser.add_argument("--scenario", action="append", choices=sorted(ALL_SCENARIOS), help="run only these")
    parser.add_argument(
        "--topology",
        choices=("native", "compose"),
        default="native",
        help="native: every scenario on processes of this host (default); compose: the crash scenarios "
        f"({', '.join(COMPOSE_SCENARIOS)}) on docker-compose.e2e.yml, an engine already running",
    )
    parser.add_argument(
        "--postgres-image", default=os.environ.get("POSTGRES_IMAGE"), help="compose: instead of postgres:16"
    )
    parser.add_argument(
        "--python-base-image", default=os.environ.get("PYTHON_BASE_IMAGE"), help="compose: instead of python:3.11-slim"
    )
    parser.add_argument("--no-build", action="store_true", help="compose: reuse the app image as it is")
    args = parser.parse_args(argv)
    beyond = sorted(set(args.scenario or ()) - set(COMPOSE_SCENARIOS))
    if args.topology == "compose" and beyond:
        parser.error(f"compose mode runs only {', '.join(COMPOSE_SCENARIOS)}, not {', '.join(beyond)}")
    try:
        summary = run(args)
    except TopologyError as exc:
        print(f"error: topology: {redact_dsn(str(exc))}", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    emit(summary, args.artifact_dir / "faults_summary.json")
    return ExitCode.PASS if summary["status"] == "passed" else ExitCode.GATE_FAILED


if __name__ == "__main__":
    sys.exit(main())
