"""Topology lifecycle: up, down, service control, and recovery from a run that was killed.

A run records itself in ``.run/<name>.json`` before it starts anything, so a run that dies
(even by SIGKILL) is found and cleaned up by the next ``up`` or by ``down``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url

from app.core.roles import OPS_ADMIN_ROLE, OPS_READER_ROLE, OWNER_ROLE, RUNTIME_ROLE
from app.core.sealing import KEYS_ENV, new_key_ring
from scripts import interrupts
from scripts.harness import REPO_ROOT, redact_dsn
from scripts.topology.compose_project import compose_down
from scripts.topology.netns import PG_PORT, NetnsPlan, hba_lines, postgres_launcher, remove_namespaces
from scripts.topology.postgres import (
    EmbeddedPostgres,
    Endpoint,
    RolePasswords,
    drop_database,
    endpoint_of,
    kill_stale_cluster,
    provision,
    server_version,
)
from scripts.topology.processes import ManagedProcess, free_port, stop_recorded

RUN_DIR = REPO_ROOT / ".run"
SERVICES = ("mock_platform", "api", "worker")
# Never handed to api or worker: the runtime gets app_user's DSNs and nothing else.
INTERRUPTED_STOP_GRACE_S = 2.0  # after Ctrl-C: SIGTERM, this long, then SIGKILL
PRIVILEGED_ENV = ("PHASE8_ADMIN_DATABASE_URL", "MIGRATION_DATABASE_URL", "OPS_DATABASE_URL", "OPS_ADMIN_DATABASE_URL")


def base_env(without: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment without the privileged DSNs a child must never inherit (and
    without the names in ``without``)."""
    return {k: v for k, v in os.environ.items() if k not in PRIVILEGED_ENV and k not in without}


class TopologyError(RuntimeError):
    """Bring-up failed; the message names the step and where its log is."""


@dataclass
class TopologyConfig:
    artifact_dir: Path
    name: str = "topology"
    admin_database_url: str | None = None  # None: start an embedded server
    keep: bool = False  # external server: keep the run's database and roles
    api_port: int | None = None
    mock_port: int | None = None
    worker_concurrency: int = 2
    api_processes: int = 1  # uvicorn worker processes behind the api port (the kernel spreads connections)
    worker_replicas: int = 1  # separate Celery worker instances (worker, worker-2, ...)
    ready_timeout_s: float = 90.0
    stop_grace_s: float = 10.0  # SIGTERM first; what is still running after this is SIGKILLed
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. shorter task time limits in tests
    netns: bool = False  # PostgreSQL, api and worker in network namespaces of their own (topology/netns.py)

    @property
    def state_path(self) -> Path:
        return RUN_DIR / f"{self.name}.json"

    @property
    def env_path(self) -> Path:
        return RUN_DIR / f"{self.name}.env"

    @property
    def logs_dir(self) -> Path:
        return self.artifact_dir / "logs"


@dataclass
class Dsns:
    runtime_async: str
    runtime_sync: str
    broker: str
    result_backend: str
    migration: str
    ops: str
    ops_admin: str

    def secrets(self) -> list[str]:
        return [self.runtime_sync, self.migration, self.ops, self.ops_admin]


class Topology:
    def __init__(self, config: TopologyConfig) -> None:
        self.config = config
        self.run_id = uuid.uuid4().hex[:8]
        self.embedded: EmbeddedPostgres | None = None
        self.netns: NetnsPlan | None = None
        self.admin_url: str | None = None
        self.database = "attribution"
        self.passwords = RolePasswords.generate()
        # Seals webhook secrets and platform keys at rest (app.core.sealing): the operator's ring when
        # the environment has one (a deployment's, or a test process's), else one made for this run.
        self.key_ring = os.environ.get(KEYS_ENV) or new_key_ring()
        # This process seals too when it creates tenants against its own topology (faults, benchmarks).
        os.environ.setdefault(KEYS_ENV, self.key_ring)
        self.dsns: Dsns | None = None
        self.processes: dict[str, ManagedProcess] = {}
        self.timings: dict[str, float] = {}
        self.postgres_version = "unknown"
        self.phase = "not started"  # the bring-up step in progress, for a report of where it stopped
        self._started = False

    @classmethod
    def attach(cls, name: str) -> Topology:
        """A handle on a topology another process brought up (the Phase 8 orchestrator, ``up``).

        It reads ``.run/<name>.json`` and ``.run/<name>.env``; it never tears anything down.
        """
        state_path, env_path = RUN_DIR / f"{name}.json", RUN_DIR / f"{name}.env"
        if not state_path.exists() or not env_path.exists():
            raise TopologyError(f"no running topology named {name!r} (looked for {state_path})")
        state = json.loads(state_path.read_text())
        env = dict(shlex.split(line)[1].split("=", 1) for line in env_path.read_text().splitlines() if line.strip())
        config = TopologyConfig(
            artifact_dir=Path(env["B07_P4_ARTIFACT_DIR"]), name=name, admin_database_url=state.get("admin_url")
        )
        topology = cls(config)
        topology.database = state["database"]
        topology.dsns = Dsns(
            runtime_async=env["DATABASE_URL"],
            runtime_sync=env["B07_P4_RUNTIME_DATABASE_URL"],
            broker=env["CELERY_BROKER_URL"],
            result_backend=env["CELERY_RESULT_BACKEND"],
            migration=env["MIGRATION_DATABASE_URL"],
            ops=env["OPS_DATABASE_URL"],
            ops_admin=env["OPS_ADMIN_DATABASE_URL"],
        )
        topology.key_ring = env[KEYS_ENV]
        if state.get("netns"):  # services are reached on the namespaces' addresses
            topology.netns = NetnsPlan.from_record(name, state["netns"])
        for service, record in state["processes"].items():
            proc = ManagedProcess(service, [], {}, REPO_ROOT, Path(record["log"]))
            proc.port, proc.attached_pid = record.get("port"), record.get("pid")
            topology.processes[service] = proc
        return topology

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> Topology:
        self._signals = interrupts.handling_signals()  # SIGTERM unwinds like Ctrl-C, so teardown runs
        self._signals.__enter__()
        try:
            self.up()
        except BaseException:
            self.down()
            self._signals.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.down()
        finally:
            self._signals.__exit__(None, None, None)

    # -- bring-up --------------------------------------------------------------------------

    def up(self) -> None:
        started = time.monotonic()
        self._boundary("cleanup_stale")
        RUN_DIR.mkdir(mode=0o700, exist_ok=True)
        RUN_DIR.chmod(0o700)  # DSNs, the key ring and an operator's tenant files live here
        cleanup_stale(self.config.state_path)
        self.config.logs_dir.mkdir(parents=True, exist_ok=True)
        self._started = True
        self._save_state()

        with self._phase("postgres"):
            if self.config.admin_database_url:
                if self.config.netns:
                    raise TopologyError("--netns moves the embedded server into a namespace; not an external one")
                self.admin_url = self.config.admin_database_url
                self.database = f"attribution_{self.run_id}"
                endpoint = endpoint_of(self.admin_url)
            else:
                self.embedded = EmbeddedPostgres.fresh()
                self._save_state()
                self.admin_url = self.embedded.start()
                endpoint = self._enter_namespaces() if self.config.netns else self.embedded.endpoint
            self._save_state()
            self.postgres_version = server_version(self.admin_url)
        with self._phase("provision"):
            provision(self.admin_url, self.database, self.passwords, own_cluster=self.embedded is not None)
            self.dsns = self._dsns(endpoint)
        with self._phase("migrate"):
            self._migrate()
        with self._phase("processes"):
            for name in self.services:
                self._boundary(f"spawn_{name}")
                self._spawn(name)
        with self._phase("ready"):
            self.wait_ready()
        self._boundary("records")
        self.timings["up_s"] = round(time.monotonic() - started, 3)
        self._write_env_file()
        self.write_probe()

    def _enter_namespaces(self) -> Endpoint:
        """Netns mode: the run's namespaces and links, and PostgreSQL moved into its own (TCP, SCRAM)."""
        assert self.embedded is not None
        remove_namespaces(self.config.name)  # a crashed run's, found by name even without its state file
        self.netns = NetnsPlan.choose(self.config.name)
        self._save_state()  # recorded before anything exists, so a crash at any point is cleaned up
        self.netns.create()
        launcher = postgres_launcher(self.netns, self.embedded.system_user)
        self.embedded.relaunch(launcher, self.netns.postgres_ip, hba_lines(self.netns))
        return Endpoint(self.netns.postgres_ip, PG_PORT)

    def _boundary(self, step: str) -> None:
        """Where bring-up is; an interrupt received since the last boundary stops it here."""
        self.phase = step
        interrupts.checkpoint(step)

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """One step of bring-up: a boundary where an interrupt stops it, and a timing ``<name>_s``."""
        self._boundary(name)
        started = time.monotonic()
        yield
        self.timings[f"{name}_s"] = round(time.monotonic() - started, 3)

    def _dsns(self, endpoint: Endpoint) -> Dsns:
        def url(user: str, password: str, driver: str) -> str:
            return endpoint.url(user, password, self.database, driver).render_as_string(hide_password=False)

        runtime = self.passwords.runtime
        return Dsns(
            runtime_async=url(RUNTIME_ROLE, runtime, "postgresql+asyncpg"),
            runtime_sync=url(RUNTIME_ROLE, runtime, "postgresql"),
            broker=url(RUNTIME_ROLE, runtime, "sqla+postgresql"),
            result_backend=url(RUNTIME_ROLE, runtime, "db+postgresql"),
            migration=url(OWNER_ROLE, self.passwords.owner, "postgresql"),
            ops=url(OPS_READER_ROLE, self.passwords.ops_reader, "postgresql"),
            ops_admin=url(OPS_ADMIN_ROLE, self.passwords.ops_admin, "postgresql"),
        )

    def _base_env(self, without: tuple[str, ...] = ()) -> dict[str, str]:
        return {**base_env(without), "PYTHONUNBUFFERED": "1"}

    @property
    def runtime_env(self) -> dict[str, str]:
        """What api and worker see: app_user DSNs only."""
        assert self.dsns is not None
        env = self._base_env()
        env.update(
            DATABASE_URL=self.dsns.runtime_async,
            B07_P4_RUNTIME_DATABASE_URL=self.dsns.runtime_sync,
            CELERY_BROKER_URL=self.dsns.broker,
            CELERY_RESULT_BACKEND=self.dsns.result_backend,
        )
        env[KEYS_ENV] = self.key_ring
        if "mock_platform" in self.processes:
            env["MOCK_PLATFORM_URL"] = self.mock_url
        env.update(self.config.extra_env)
        return env

    def superuser_url(self, database: str | None = None) -> str:
        """The cluster's bootstrap superuser, in this run's database unless another is named: for
        harness steps that act behind the runtime's back (controls, statistics), never for a service."""
        if self.admin_url is None:
            raise TopologyError("no superuser URL: the topology is not up, or was attached without one")
        return make_url(self.admin_url).set(database=database or self.database).render_as_string(hide_password=False)

    @property
    def broker_url(self) -> str:
        """The broker api and worker really use: the database, unless the run names another (RabbitMQ)."""
        assert self.dsns is not None
        return self.config.extra_env.get("CELERY_BROKER_URL", self.dsns.broker)

    @property
    def operator_env(self) -> dict[str, str]:
        """Everything an operator needs to run any script by hand against this topology."""
        assert self.dsns is not None
        return {
            "DATABASE_URL": self.dsns.runtime_async,
            "B07_P4_RUNTIME_DATABASE_URL": self.dsns.runtime_sync,
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_RESULT_BACKEND": self.dsns.result_backend,
            "MIGRATION_DATABASE_URL": self.dsns.migration,
            "OPS_DATABASE_URL": self.dsns.ops,
            "OPS_ADMIN_DATABASE_URL": self.dsns.ops_admin,
            KEYS_ENV: self.key_ring,
            "MOCK_PLATFORM_URL": self.mock_url,
            "E2E_API_BASE_URL": self.api_url,
            "B07_P4_ARTIFACT_DIR": str(self.config.artifact_dir),
        }

    def secrets(self) -> list[str]:
        """Every secret this run generated, for the evidence pack's hygiene scan."""
        return [*self.passwords.all(), *(entry.split(":", 1)[1] for entry in self.key_ring.split(","))]

    def _migrate(self) -> None:
        assert self.dsns is not None
        env = self._base_env()
        env["MIGRATION_DATABASE_URL"] = self.dsns.migration
        env[KEYS_ENV] = self.key_ring  # 0018 seals any plaintext credentials it finds
        log_path = self.config.logs_dir / "migrations.log"
        with log_path.open("ab") as log:
            result = subprocess.run(
                [sys.executable, "-m", "alembic", "upgrade", "head"],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
        if result.returncode != 0:
            raise TopologyError(f"migrations failed (exit {result.returncode}); see {log_path}")

    @property
    def services(self) -> tuple[str, ...]:
        replicas = tuple(f"worker-{n}" for n in range(2, self.config.worker_replicas + 1))
        return (*SERVICES, *replicas)

    def _argv(self, name: str, port: int | None) -> list[str]:
        if name == "mock_platform":
            return [sys.executable, "-m", "mock_platform", "--host", self._host("mock_platform"), "--port", str(port)]
        if name == "api":
            return [
                *self._netns_prefix(name),
                sys.executable,
                "-m",
                "app.api_server",
                "--port",
                str(port),
                "--host",
                "0.0.0.0" if self.netns else "127.0.0.1",  # noqa: S104 (inside its own namespace: its links only)
                "--workers",
                str(self.config.api_processes),
            ]
        return [
            *self._netns_prefix(name),
            sys.executable,
            "-m",
            "app.worker",
            "--concurrency",
            str(self.config.worker_concurrency),
            "--hostname",
            f"{name}-{self.run_id}@%h",
        ]

    def _netns_prefix(self, name: str) -> list[str]:
        """Netns mode: api and every worker replica run inside their role's namespace."""
        if self.netns is None or name == "mock_platform":
            return []
        return self.netns.prefix_argv("api" if name == "api" else "worker")

    def _host(self, name: str) -> str:
        """Where the harness reaches a service: loopback, or in netns mode its host-link address."""
        if self.netns is None:
            return "127.0.0.1"
        return self.netns.harness_ip if name == "mock_platform" else self.netns.host_link_ip("api")

    def _spawn(self, name: str) -> ManagedProcess:
        previous = self.processes.get(name)
        port = None
        if name == "mock_platform":
            port = previous.port if previous else free_port(self.config.mock_port)
        elif name == "api":
            port = previous.port if previous else free_port(self.config.api_port)
        # mock_platform stands in for third parties: it gets neither DSNs nor the key ring.
        env = self.runtime_env if name != "mock_platform" else self._base_env(without=(KEYS_ENV,))
        proc = ManagedProcess(name, self._argv(name, port), env, REPO_ROOT, self.config.logs_dir / f"{name}.log")
        proc.port = port
        with interrupts.shielded():  # started and recorded together, so teardown always knows of it
            proc.start()
            self.processes[name] = proc
            self._save_state()
        interrupts.checkpoint(f"spawned_{name}")
        return proc

    # -- readiness ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://{self._host('api')}:{self.processes['api'].port}"

    @property
    def mock_url(self) -> str:
        return f"http://{self._host('mock_platform')}:{self.processes['mock_platform'].port}"

    def wait_ready(self, timeout_s: float | None = None) -> None:
        deadline = time.monotonic() + (timeout_s or self.config.ready_timeout_s)
        self._wait_http("mock_platform", f"{self.mock_url}/health", deadline)
        self._wait_http("api", f"{self.api_url}/health/ready", deadline)
        self._wait_http("worker", f"{self.api_url}/health/worker?fresh=true", deadline)

    def _wait_http(self, name: str, url: str, deadline: float) -> None:
        proc = self.processes[name]
        last = "no answer"
        with httpx.Client(timeout=httpx.Timeout(10.0, connect=1.0)) as client:
            while time.monotonic() < deadline:
                if not proc.alive():
                    raise TopologyError(
                        f"{name} exited during start-up; see {proc.log_path}:\n{redact_dsn(proc.log_tail())}"
                    )
                try:
                    response = client.get(url)
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}: {response.text[:300]}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                time.sleep(0.1)
        raise TopologyError(f"{name} not ready in time ({last}); see {proc.log_path}")

    # -- service control (fault tests) --------------------------------------------------------

    def stop_service(self, name: str, grace_s: float = 10.0) -> None:
        self.processes[name].stop(grace_s)

    def kill_service(self, name: str) -> None:
        self.processes[name].kill()

    def start_service(self, name: str) -> None:
        self._spawn(name)

    def stop_postgres(self) -> None:
        if self.embedded is None:
            raise TopologyError("stopping PostgreSQL is only possible for the embedded server")
        self.embedded.stop()

    def start_postgres(self) -> None:
        if self.embedded is None:
            raise TopologyError("starting PostgreSQL is only possible for the embedded server")
        self.embedded.restart_after_stop()

    # -- teardown ----------------------------------------------------------------------------

    def down(self) -> None:
        """Stop everything this run started. After an interrupt it is quick (short grace, then SIGKILL;
        the throwaway cluster stopped in immediate mode) so the whole stop stays within seconds."""
        with interrupts.shielded():
            if not self._started:
                return
            self._started = False
            hurry = interrupts.received() is not None
            grace = INTERRUPTED_STOP_GRACE_S if hurry else self.config.stop_grace_s
            threads = [threading.Thread(target=p.stop, args=(grace,), daemon=True) for p in self.processes.values()]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=grace + (5 if hurry else 15))
            if self.embedded is not None:
                with contextlib.suppress(OSError):
                    self._keep_postgres_log()
                if not hurry:
                    with contextlib.suppress(Exception):
                        self.embedded.stop()
                # After an interrupt the throwaway cluster is killed outright (no pg_ctl wait).
                kill_stale_cluster(
                    self.embedded.pgdata, None if hurry else self.embedded.bin_path, self.embedded.system_user
                )
            elif self.admin_url and not self.config.keep:
                with contextlib.suppress(Exception):
                    drop_database(self.admin_url, self.database, drop_roles=True)
            if self.netns is not None:  # after every process in them has stopped
                self.netns.remove()
            for path in (self.config.state_path, self.config.env_path):
                path.unlink(missing_ok=True)

    def _keep_postgres_log(self) -> None:
        assert self.embedded is not None
        if self.embedded.logfile.exists():
            shutil.copyfile(self.embedded.logfile, self.config.logs_dir / "postgres.log")

    # -- records -----------------------------------------------------------------------------

    def _save_state(self) -> None:
        state = {
            "name": self.config.name,
            "run_id": self.run_id,
            "owner_pid": os.getpid(),
            "mode": "external" if self.config.admin_database_url else "embedded",
            "pgdata": str(self.embedded.pgdata) if self.embedded else None,
            "pg_bin": str(self.embedded.bin_path) if self.embedded and self.embedded.bin_path else None,
            "pg_system_user": self.embedded.system_user if self.embedded else None,
            "admin_url": self.config.admin_database_url,
            "database": self.database,
            "keep": self.config.keep,
            "netns": self.netns.as_record() if self.netns else None,
            "processes": {name: proc.record() for name, proc in self.processes.items()},
        }
        _write_private(self.config.state_path, json.dumps(state, indent=2))

    def _write_env_file(self) -> None:
        lines = [f"export {key}={value!r}" for key, value in self.operator_env.items()]
        _write_private(self.config.env_path, "\n".join(lines) + "\n")

    def probe(self) -> dict[str, Any]:
        assert self.dsns is not None
        return {
            "mode": "external" if self.config.admin_database_url else "embedded",
            "run_id": self.run_id,
            "postgres": {
                "version": self.postgres_version,
                "pid": self.embedded.pid() if self.embedded else None,
                "database": self.database,
            },
            "services": {name: proc.record() for name, proc in self.processes.items()},
            "netns": self.netns.as_record() if self.netns else None,
            "urls": {"api": self.api_url, "mock_platform": self.mock_url},
            "dsns": {
                "runtime_async": redact_dsn(self.dsns.runtime_async),
                "runtime_sync": redact_dsn(self.dsns.runtime_sync),
                "broker": redact_dsn(self.broker_url),
                "result_backend": redact_dsn(self.dsns.result_backend),
                "migration": redact_dsn(self.dsns.migration),
                "ops": redact_dsn(self.dsns.ops),
                "ops_admin": redact_dsn(self.dsns.ops_admin),
            },
            "timings": self.timings,
            "python": sys.version.split()[0],
        }

    def write_probe(self) -> Path:
        path = self.config.artifact_dir / "p8_topology_probe.json"
        path.write_text(json.dumps(self.probe(), indent=2, sort_keys=True) + "\n")
        return path


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def cleanup_stale(state_path: Path) -> dict[str, Any]:
    """Stop whatever a previous run with this name left behind; returns what was found."""
    if not state_path.exists():
        return {"found": False}
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        state_path.unlink(missing_ok=True)
        return {"found": True, "unreadable": True}
    if state.get("mode") == "compose":  # containers: Compose takes its own project down
        logs = Path(state.get("logs_dir") or RUN_DIR)
        taken_down = compose_down(
            state.get("compose_command") or [], state["compose_project"], logs / "compose.log", base_env()
        )
        state_path.unlink(missing_ok=True)
        state_path.with_suffix(".env").unlink(missing_ok=True)
        return {"found": True, "compose_project": state["compose_project"], "taken_down": taken_down}
    stopped = [name for name, record in state.get("processes", {}).items() if stop_recorded(record)]
    cluster_running = False
    if state.get("pgdata"):
        pg_bin = Path(state["pg_bin"]) if state.get("pg_bin") else None
        cluster_running = kill_stale_cluster(Path(state["pgdata"]), pg_bin, state.get("pg_system_user"))
    elif state.get("admin_url") and not state.get("keep"):
        with contextlib.suppress(Exception):
            drop_database(state["admin_url"], state["database"], drop_roles=True)
    namespaces = remove_namespaces(state["name"]) if state.get("netns") and state.get("name") else []
    state_path.unlink(missing_ok=True)
    state_path.with_suffix(".env").unlink(missing_ok=True)
    return {"found": True, "stopped_processes": stopped, "stopped_postgres": cluster_running, "namespaces": namespaces}
