"""The P4 gate: the seed's steps on the native topology, or on docker-compose.e2e.yml:

topology up (migrations as the owner) -> health waits -> the E2E test -> the ops queries,
everything in artifacts/b07-p4/ (logs/, runtime_db_probe.json, sql/*.csv, p4_summary.json).

    python scripts/ci/p4_e2e.py [--artifact-dir artifacts/b07-p4] [--admin-database-url URL]
    python scripts/ci/p4_e2e.py --topology compose [--postgres-image IMG] [--python-base-image IMG]

--topology compose brings the seed's runtime topology up with Docker Compose (the closure pack's
compose mode: registry images by default, local ones where no registry answers), and the same
steps run against it; the Docker SDK must be installed (`nox -s p4_e2e -- --topology compose` does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from scripts.harness import EXIT_CODES_HELP, ExitCode
from scripts.phase8.evidence import run_step, write_manifest
from scripts.topology import Topology, TopologyConfig, TopologyError
from scripts.topology.compose import ComposeImages, ComposeTopology

E2E_TEST = "backend/tests/integration/test_b07_p4_operational_readiness_e2e.py"


def make_topology(args: argparse.Namespace, artifact_dir: Path) -> Topology:
    config = TopologyConfig(artifact_dir=artifact_dir, name="p4", admin_database_url=args.admin_database_url)
    if args.topology == "native":
        return Topology(config)
    return ComposeTopology(config, ComposeImages(postgres=args.postgres_image, python_base=args.python_base_image))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifact-dir", type=Path, default=Path("artifacts/b07-p4"))
    parser.add_argument("--admin-database-url", default=os.environ.get("PHASE8_ADMIN_DATABASE_URL"))
    parser.add_argument(
        "--topology",
        choices=("native", "compose"),
        default="native",
        help="native: processes on this host (default); compose: docker-compose.e2e.yml on a Docker engine",
    )
    parser.add_argument(
        "--postgres-image", default=os.environ.get("POSTGRES_IMAGE"), help="compose: instead of postgres:16"
    )
    parser.add_argument(
        "--python-base-image", default=os.environ.get("PYTHON_BASE_IMAGE"), help="compose: instead of python:3.11-slim"
    )
    args = parser.parse_args(argv)
    if args.topology == "compose" and args.admin_database_url:
        parser.error("--topology compose runs its own PostgreSQL: no --admin-database-url")
    artifact_dir = args.artifact_dir.resolve()
    (artifact_dir / "logs").mkdir(parents=True, exist_ok=True)
    results: dict[str, int] = {}
    try:
        with make_topology(args, artifact_dir) as topo:
            env = {**topo.operator_env, "E2E_ATTACH_TOPOLOGY": "p4", "B07_P4_ARTIFACT_DIR": str(artifact_dir)}
            logs, py = artifact_dir / "logs", sys.executable
            steps = {
                "wait_for_e2e_health": [py, "scripts/wait_for_e2e_health.py", "--base-url", topo.api_url],
                "wait_for_e2e_worker": [py, "scripts/wait_for_e2e_worker.py", "--base-url", topo.api_url],
                "pytest_p4_e2e": [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra", E2E_TEST],
                "run_b07_p4_operational_queries": [
                    "scripts/ci/run_b07_p4_operational_queries.sh",
                    "-",  # the DSN comes from $OPS_DATABASE_URL (operator_env), never the command line
                    str(artifact_dir / "runtime_db_probe.json"),
                    str(artifact_dir / "sql"),
                ],
            }
            for name, argv_ in steps.items():
                results[name] = run_step(name, argv_, logs, {**env, "PYTHON": py}, timeout_s=600)
                if results[name] != 0:
                    break
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        results["topology"] = 1
    passed = bool(results) and all(code == 0 for code in results.values()) and len(results) == 4
    (artifact_dir / "p4_summary.json").write_text(
        json.dumps({"status": "passed" if passed else "failed", "steps": results}, indent=2) + "\n"
    )
    write_manifest(artifact_dir)
    print(json.dumps({"status": "passed" if passed else "failed", "steps": results}))
    return ExitCode.PASS if passed else ExitCode.GATE_FAILED


if __name__ == "__main__":
    sys.exit(main())
