"""Run the Phase 8 closure pack: topology up, every gate in order, evidence pack, topology down.

    python scripts/phase8/run_phase8_closure_pack.py --artifact-dir artifacts/b07-phase8
    python scripts/phase8/run_phase8_closure_pack.py --ci-subset --artifact-dir artifacts/b07-phase8
    python scripts/phase8/run_phase8_closure_pack.py --full-physics --artifact-dir artifacts/b07-phase8

Prints a line as each gate starts and ends, and the gate table at the end. Writes
phase8_gate_summary.json (per-gate status, timings, evidence, metrics; `error` on failure),
report.html (for a person), junit.xml (one test case per gate, for CI tools; with
$GITHUB_STEP_SUMMARY set, the gate table and key metrics are appended there as Markdown),
manifest.sha256 (`cd DIR && sha256sum -c manifest.sha256`) and attestation.intoto.json (an
in-toto v1 Statement over every file). Ctrl-C or SIGTERM at any step stops the running step and
the topology, writes a failed summary naming the step, and exits 1.

Modes: --ci-subset runs the sanity load profile (5 rps x 10 s), the default the EG3.4 profile
(46 rps x 60 s), --full-physics adds the capacity sweep. Each runs the null benchmark first.

Topologies: --topology native (the default) runs PostgreSQL and the three processes on this host;
--topology netns runs the same processes with PostgreSQL, the api and the worker each in a network
namespace of the run's, so every connection between them crosses a network interface (root; the
namespaces go with the topology); --topology compose runs docker-compose.e2e.yml on a Docker engine
(`docker compose`, else `docker-compose`), with the same gates; --postgres-image /
--python-base-image (env POSTGRES_IMAGE, PYTHON_BASE_IMAGE) replace the registry's base images, e.g.
with scripts/compose/build_local_images.sh's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts import interrupts
from scripts.harness import EXIT_CODES_HELP, ExitCode, git_sha, redact_dsn
from scripts.phase8 import ci_reports
from scripts.phase8.evidence import write_attestation, write_manifest
from scripts.phase8.gates import GATES, Gate, GateContext, GateResult, timed
from scripts.phase8.report import render
from scripts.topology import Topology, TopologyConfig, TopologyError
from scripts.topology.compose import ComposeImages, ComposeTopology

SUMMARY = "phase8_gate_summary.json"


def prepare(artifact_dir: Path) -> None:
    """Start from an empty directory so the manifest describes this run and nothing older."""
    if artifact_dir.exists():
        shutil.rmtree(artifact_dir)
    (artifact_dir / "logs").mkdir(parents=True)


def announce(gate: Gate, started: float) -> None:
    print(f"[phase8] {gate.id}: running ({time.monotonic() - started:.0f} s into the run)", file=sys.stderr, flush=True)


def record(summary: dict[str, Any], gate: Gate, result: GateResult) -> None:
    entry = {
        "title": gate.title,
        "status": result.status,
        "duration_s": result.duration_s,
        "evidence": result.evidence,
        "metrics": result.metrics,
        "first_log": gate.log,
    }
    if result.error:
        entry["error"] = result.error
    summary["gates"][gate.id] = entry
    print(
        f"[phase8] {gate.id}: {result.status} in {result.duration_s:.1f} s"
        + (f" ({result.error})" if result.error else ""),
        file=sys.stderr,
        flush=True,
    )


def make_topology(args: argparse.Namespace, artifact_dir: Path) -> Topology:
    config = TopologyConfig(
        artifact_dir=artifact_dir,
        name=args.topology_name,
        admin_database_url=args.admin_database_url,
        api_processes=args.api_processes,
        worker_replicas=args.worker_replicas,
        extra_env={"CELERY_BROKER_URL": args.broker_url} if args.broker_url else {},
        netns=args.topology == "netns",
    )
    if args.topology in ("native", "netns"):
        return Topology(config)
    images = ComposeImages(postgres=args.postgres_image, python_base=args.python_base_image, build=not args.no_build)
    return ComposeTopology(config, images)


def run(args: argparse.Namespace) -> int:
    artifact_dir: Path = args.artifact_dir.resolve()
    prepare(artifact_dir)
    mode = "ci_subset" if args.ci_subset else "full_physics" if args.full_physics else "default"
    started = time.monotonic()
    summary: dict[str, Any] = {
        "status": "running",
        "mode": mode,
        "git_sha": git_sha(),
        "started_at": datetime.now(UTC).isoformat(),
        "artifact_dir": str(artifact_dir),
        "gates": {},
    }
    topology = make_topology(args, artifact_dir)
    summary["topology"] = args.topology
    summary["shape"] = {
        "api_processes": args.api_processes,
        "worker_replicas": args.worker_replicas,
        "broker": redact_dsn(args.broker_url) if args.broker_url else "postgresql (sqla transport)",
    }
    ctx = closure_context(args, artifact_dir, mode, topology)
    selected = [gate for gate in GATES if not args.gate or gate.id in args.gate]
    current, step = selected[0], "bring-up"
    with interrupts.handling_signals():  # Ctrl-C or SIGTERM anywhere: teardown, a failed summary, exit 1
        try:
            with topology:
                for current in (gate for gate in selected if not gate.after_teardown):
                    step = current.id
                    interrupts.checkpoint(step)
                    announce(current, started)
                    record(summary, current, timed(current, ctx))
                step = "teardown"
            for current in (gate for gate in selected if gate.after_teardown):
                step = current.id
                interrupts.checkpoint(step)
                announce(current, started)
                record(summary, current, timed(current, ctx))
            step = "evidence"
            interrupts.checkpoint(step)
        except TopologyError as exc:
            record(summary, current, GateResult("failed", ["logs/"], error=f"topology: {redact_dsn(str(exc))}"))
        except KeyboardInterrupt as exc:
            during = f"bring-up ({topology.phase})" if step == "bring-up" else step
            sig = interrupts.received()
            summary["interrupted"] = {"signal": sig.name if sig else "KeyboardInterrupt", "during": during}
            if step in (current.id, "bring-up"):  # that gate (bring-up belongs to the first) was cut short
                record(summary, current, GateResult("failed", error=f"interrupted during {during} ({exc})"))
        except Exception as exc:
            record(summary, current, GateResult("failed", error=f"{type(exc).__name__}: {redact_dsn(str(exc))}"))
        with interrupts.shielded():
            return finish(artifact_dir, summary, selected, started)


def finish(artifact_dir: Path, summary: dict[str, Any], selected: list[Gate], started: float) -> int:
    """Write the summary, the report, the manifest and the attestation; the exit code says the verdict."""
    late = interrupts.received()  # a signal after the last step boundary still fails the run
    if late is not None and "interrupted" not in summary:
        summary["interrupted"] = {"signal": late.name, "during": "evidence"}
    gates = summary["gates"]
    failed = [gid for gid, g in gates.items() if g["status"] == "failed"]
    if failed or "interrupted" in summary or len(gates) < len(selected):
        summary["status"] = "failed"
        if failed:
            summary["error"] = f"{failed[0]}: {gates[failed[0]]['error']}"
        elif "interrupted" in summary:
            during = summary["interrupted"]["during"]
            summary["error"] = f"{during}: interrupted during {during} ({summary['interrupted']['signal']})"
        else:
            missing = next(g.id for g in selected if g.id not in gates)
            summary["error"] = f"{missing}: did not run"
    else:
        summary["status"] = "passed" if len(selected) == len(GATES) else "partial"
    summary["finished_at"] = datetime.now(UTC).isoformat()
    summary["duration_s"] = round(time.monotonic() - started, 3)
    (artifact_dir / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    render(artifact_dir, summary)
    gate_ids = [gate.id for gate in selected]
    ci_reports.write_junit(artifact_dir, summary, gate_ids)
    write_manifest(artifact_dir)
    write_attestation(artifact_dir, summary)
    print(ci_reports.terminal_table(summary, gate_ids), file=sys.stderr)
    ci_reports.append_step_summary(summary, gate_ids)
    print(json.dumps({k: summary[k] for k in ("status", "mode", "duration_s")}))
    if summary["status"] == "failed":
        print(f"[phase8] FAILED: {summary['error']}; read {artifact_dir / SUMMARY}", file=sys.stderr)
        return ExitCode.GATE_FAILED
    if summary["status"] == "partial":
        print("[phase8] the selected gates passed; a partial run proves nothing about the rest", file=sys.stderr)
    return ExitCode.PASS


def closure_context(args: argparse.Namespace, artifact_dir: Path, mode: str, topology: Topology) -> GateContext:
    """What every gate of this run sees: the LLM background load unless switched off, and always the
    k6 cross-check (only EG8.5's tests leave it out)."""
    return GateContext(
        artifact_dir,
        mode,
        topology,
        llm_background_load=not args.no_llm_background_load,
        sweep_floor_rps=args.sweep_floor,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifact-dir", type=Path, default=Path("artifacts/b07-phase8"))
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--ci-subset", action="store_true", help="functional gates, null benchmark + sanity load")
    modes.add_argument("--full-physics", action="store_true", help="default gates plus the capacity sweep")
    parser.add_argument(
        "--admin-database-url",
        default=os.environ.get("PHASE8_ADMIN_DATABASE_URL"),
        help="existing server's superuser DSN (env PHASE8_ADMIN_DATABASE_URL); default embedded",
    )
    parser.add_argument("--topology-name", default="phase8", help="run name (state in .run/<name>.json)")
    parser.add_argument(
        "--topology",
        choices=("native", "netns", "compose"),
        default=os.environ.get("PHASE8_TOPOLOGY", "native"),
        help="native: processes on this host (default); netns: the same, PostgreSQL, api and worker each in a "
        "network namespace (root); compose: docker-compose.e2e.yml on a Docker engine (env PHASE8_TOPOLOGY)",
    )
    parser.add_argument(
        "--postgres-image",
        default=os.environ.get("POSTGRES_IMAGE"),
        help="compose: PostgreSQL image instead of postgres:16 (env POSTGRES_IMAGE)",
    )
    parser.add_argument(
        "--python-base-image",
        default=os.environ.get("PYTHON_BASE_IMAGE"),
        help="compose: base of the app image instead of python:3.11-slim (env PYTHON_BASE_IMAGE)",
    )
    parser.add_argument("--no-build", action="store_true", help="compose: reuse the app image as it is")
    parser.add_argument(
        "--gate",
        action="append",
        choices=[gate.id for gate in GATES],
        help="run only this gate (repeatable), e.g. to re-check one while debugging; the summary's status is "
        "then `partial`, never `passed`",
    )
    parser.add_argument(
        "--no-llm-background-load",
        action="store_true",
        help="negative control: no LLM traffic during ingestion, so EG8.5 must fail",
    )
    parser.add_argument("--api-processes", type=int, default=1, help="uvicorn processes behind the api port")
    parser.add_argument("--worker-replicas", type=int, default=1, help="separate Celery worker instances")
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("PHASE8_BROKER_URL"),
        help="Celery broker for api and worker, e.g. amqp://... (env PHASE8_BROKER_URL); default the database",
    )
    parser.add_argument(
        "--sweep-floor", type=float, default=800.0, help="full physics: least sustainable rate the sweep must find"
    )
    args = parser.parse_args(argv)
    if args.topology == "netns" and args.admin_database_url:
        parser.error("--topology netns moves the embedded server into a namespace: no --admin-database-url")
    if args.topology == "compose" and (
        args.admin_database_url or args.broker_url or args.api_processes != 1 or args.worker_replicas != 1
    ):
        parser.error(
            "--topology compose runs the compose file's shape: its own PostgreSQL (no --admin-database-url), "
            "the database as broker, one api process, one worker"
        )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
