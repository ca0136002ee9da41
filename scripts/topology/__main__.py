"""Operator CLI for the native topology.

python -m scripts.topology up [--foreground] [--admin-database-url URL]
source .run/topology.env        # then run any script by hand against it
python -m scripts.topology status
python -m scripts.topology down
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import psycopg

from scripts import interrupts
from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, fail, redact_dsn
from scripts.topology.lifecycle import RUN_DIR, Topology, TopologyConfig, TopologyError, cleanup_stale
from scripts.topology.postgres import PostgresError, RolePasswords, provision


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.topology",
        description="Start, inspect or stop the native topology: PostgreSQL, mock_platform, api, worker.",
        epilog=EXIT_CODES_HELP,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring the topology up and wait until every service is healthy")
    up.add_argument(
        "--artifact-dir",
        type=Path,
        default=Path("artifacts/topology"),
        help="logs go to <dir>/logs/<service>.log; p8_topology_probe.json to <dir>",
    )
    up.add_argument(
        "--admin-database-url",
        default=os.environ.get("PHASE8_ADMIN_DATABASE_URL"),
        help="bootstrap superuser DSN of an existing server (env PHASE8_ADMIN_DATABASE_URL); "
        "default: start an embedded server",
    )
    up.add_argument("--keep", action="store_true", help="external server: keep the run's database and roles")
    up.add_argument("--api-port", type=int, help="preferred api port (another is picked if it is taken)")
    up.add_argument("--mock-port", type=int, help="preferred mock_platform port")
    up.add_argument("--worker-concurrency", type=int, default=2)
    up.add_argument(
        "--netns",
        action="store_true",
        help="PostgreSQL, api and worker each in a network namespace of the run's (root; scripts/topology/netns.py)",
    )
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for health")
    up.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C or SIGTERM tears everything down")
    prov = sub.add_parser("provision", help="create roles and the database on a server (compose's one-shot step)")
    prov.add_argument(
        "--admin-database-url",
        default=os.environ.get("PHASE8_ADMIN_DATABASE_URL"),
        help="bootstrap superuser DSN (env PHASE8_ADMIN_DATABASE_URL)",
    )
    prov.add_argument("--database", default="attribution")
    prov.add_argument(
        "--shared-server",
        action="store_true",
        help="a server other applications use too: leave its other databases' PUBLIC rights alone",
    )
    for name in ("down", "status"):
        cmd = sub.add_parser(name, help=f"{name} the topology recorded in .run/<name>.json")
        cmd.add_argument("--artifact-dir", type=Path, default=Path("artifacts/topology"), help=argparse.SUPPRESS)
    for cmd in sub.choices.values():
        cmd.add_argument("--name", default="topology", help="run name; state in .run/<name>.json")
    return parser


def _up(args: argparse.Namespace) -> int:
    config = TopologyConfig(
        artifact_dir=args.artifact_dir.resolve(),
        name=args.name,
        admin_database_url=args.admin_database_url,
        keep=args.keep,
        api_port=args.api_port,
        mock_port=args.mock_port,
        worker_concurrency=args.worker_concurrency,
        ready_timeout_s=args.timeout,
        netns=args.netns,
    )
    topology = Topology(config)
    with interrupts.handling_signals():  # SIGINT or SIGTERM at any step: tear down, exit 130
        try:
            if args.foreground:
                with topology:
                    emit(topology.probe())
                    print(f"ready; `source {config.env_path}` to use it; Ctrl-C to stop", file=sys.stderr)
                    while True:
                        interrupts.checkpoint("foreground")
                        time.sleep(0.5)
            else:
                try:  # detached: report and leave it running
                    topology.up()
                    emit(topology.probe())
                    print(
                        f"ready; `source {config.env_path}` to use it; `python -m scripts.topology down` to stop",
                        file=sys.stderr,
                    )
                    interrupts.checkpoint("exit")  # a signal that arrived while reporting still tears down
                except BaseException:
                    topology.down()
                    raise
        except KeyboardInterrupt:
            print("interrupted: topology torn down", file=sys.stderr)
            return 130
        except TopologyError as exc:
            fail(ExitCode.GATE_FAILED, str(exc))
        except Exception as exc:
            fail(ExitCode.USAGE_OR_ENVIRONMENT, f"{type(exc).__name__}: {exc}")
    return 0


def _provision(args: argparse.Namespace) -> int:
    """Passwords come from APP_OWNER_PASSWORD, APP_USER_PASSWORD, OPS_READER_PASSWORD and
    OPS_ADMIN_PASSWORD; never from flags."""
    if not args.admin_database_url:
        fail(
            ExitCode.USAGE_OR_ENVIRONMENT,
            "no admin DSN: pass --admin-database-url or set PHASE8_ADMIN_DATABASE_URL",
        )
    try:
        provision(
            args.admin_database_url,
            args.database,
            RolePasswords.from_env(),
            recreate=False,
            own_cluster=not args.shared_server,
        )
    except PostgresError as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, str(exc))
    except psycopg.Error as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"provisioning failed: {redact_dsn(str(exc).splitlines()[0])}")
    emit({"status": "provisioned", "database": args.database})
    return 0


def _status(name: str) -> int:
    state_path = RUN_DIR / f"{name}.json"
    if not state_path.exists():
        emit({"status": "down", "name": name})
        return 1
    state = json.loads(state_path.read_text())
    alive = {}
    for service, record in state.get("processes", {}).items():
        try:
            os.kill(record["pid"], 0)
            alive[service] = True
        except (OSError, TypeError):
            alive[service] = False
    up = bool(alive) and all(alive.values())
    emit({"status": "up" if up else "degraded", "name": name, "alive": alive, "mode": state.get("mode")})
    return 0 if up else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    if args.command == "status":
        return _status(args.name)
    if args.command == "provision":
        return _provision(args)
    emit({"status": "down", "name": args.name, **cleanup_stale(RUN_DIR / f"{args.name}.json")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
