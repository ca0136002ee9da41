"""The topology as containers: ``docker-compose.e2e.yml`` brought up, watched and torn down.

Same interface as the native ``Topology`` (the gates, the attached tests and the fault scenarios
cannot tell them apart): DSNs for the host side point at the published PostgreSQL port, the
runtime inside the containers connects as app_user by service name. Generated passwords and the
key ring reach Compose (and through it the containers) by environment only. Each service's log is
followed into ``logs/<service>.log`` through the Docker SDK while the run lasts and written out in
full at teardown; ``p8_topology_probe.json`` gains each container's id, image and health.
Teardown is always ``down -v`` (also after Ctrl-C or a failure), and a run killed outright is
found by the next run of that name (``cleanup_stale``) and taken down the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from app.core.sealing import KEYS_ENV
from scripts import interrupts
from scripts.compose.engine import EngineError, compose_command, docker_client
from scripts.harness import REPO_ROOT, redact_dsn
from scripts.topology.compose_project import COMPOSE_FILE, COMPOSE_TUNABLES, COMPOSE_VARIABLES, compose_down
from scripts.topology.lifecycle import (
    RUN_DIR,
    Topology,
    TopologyConfig,
    TopologyError,
    _write_private,
    base_env,
    cleanup_stale,
)
from scripts.topology.postgres import Endpoint, server_version
from scripts.topology.processes import ManagedProcess, free_port

LONG_RUNNING = ("postgres", "mock_platform", "api", "worker")
ONE_SHOT = ("provision", "migrate")
LOG_NAMES = {"migrate": "migrations"}  # the native mode's file name for the same step
KILL_WAIT_S = 10.0
COMPOSE_TIMEOUT_S = 1200.0  # the first image build on vfs, on a busy machine, is the slow case


@dataclass
class ComposeImages:
    """Which base images the file uses; ``None`` keeps the file's registry defaults."""

    postgres: str | None = None  # POSTGRES_IMAGE, e.g. a local one from build_local_images.sh
    python_base: str | None = None  # PYTHON_BASE_IMAGE, the app image's base
    build: bool = True  # False: reuse the app image as it is (it must exist)

    def env(self) -> dict[str, str]:
        chosen = {"POSTGRES_IMAGE": self.postgres, "PYTHON_BASE_IMAGE": self.python_base}
        return {key: value for key, value in chosen.items() if value}


def project_name(name: str, run_id: str) -> str:
    """Compose project names allow lowercase letters, digits, ``-`` and ``_``."""
    return re.sub(r"[^a-z0-9_-]", "-", f"{name}-{run_id}".lower())


@dataclass
class ContainerProcess(ManagedProcess):
    """A service's container, behind the interface of a native child process."""

    container_id: str = ""
    client: Any = None
    crashes: list[dict[str, Any]] = field(default_factory=list)  # what each kill() left: the fault's evidence
    stopped_following: threading.Event = field(default_factory=threading.Event)
    log_lock: threading.Lock = field(default_factory=threading.Lock)

    def _container(self) -> Any:
        return self.client.containers.get(self.container_id)

    def state(self) -> dict[str, Any]:
        try:
            return dict(self._container().attrs.get("State", {}))
        except Exception:
            return {}

    @property
    def pid(self) -> int | None:  # the container's main process, as the host sees it
        pid = self.state().get("Pid")
        return int(pid) if pid else self.attached_pid

    def alive(self) -> bool:
        return bool(self.state().get("Running"))

    def stop(self, grace_s: float = 10.0, sig: Any = None) -> None:
        with contextlib.suppress(Exception):
            self._container().stop(timeout=max(0, round(grace_s)))

    def kill(self) -> None:
        """SIGKILL the container's processes (a crash, as the fault scenarios want it) and wait until the
        engine reports it stopped. A kill that fails raises: a fault that did not happen must not pass
        for one survived."""
        container = self._container()
        started_at = container.attrs.get("State", {}).get("StartedAt")
        container.kill()
        deadline = time.monotonic() + KILL_WAIT_S
        while (state := self.state()).get("Running", True):
            if time.monotonic() > deadline:
                raise TopologyError(f"{self.name}: still running {KILL_WAIT_S:.0f} s after docker kill")
            time.sleep(0.1)
        self.crashes.append({"started_at": started_at, "exit_code": state.get("ExitCode")})

    def start(self) -> None:
        self._container().start()
        self.follow()

    def follow(self) -> None:
        """Append the container's output to ``log_path`` from now on (a thread; ends with the container)."""
        since = int(time.time())
        thread = threading.Thread(target=self._follow, args=(since,), daemon=True, name=f"logs-{self.name}")
        thread.start()

    def _follow(self, since: int) -> None:
        with contextlib.suppress(Exception):
            stream = self._container().logs(stream=True, follow=True, since=since)
            with self.log_path.open("ab") as log:
                for chunk in stream:
                    with self.log_lock:
                        if self.stopped_following.is_set():
                            return
                        log.write(chunk)
                        log.flush()

    def write_full_log(self) -> None:
        """The container's whole output (every start of it), replacing what was followed."""
        self.stopped_following.set()
        with self.log_lock, contextlib.suppress(Exception):
            self.log_path.write_bytes(self._container().logs(stdout=True, stderr=True))


class ComposeTopology(Topology):
    """``Topology`` on Docker: same env, DSNs, probes and service control; containers instead of processes."""

    def __init__(self, config: TopologyConfig, images: ComposeImages | None = None) -> None:
        super().__init__(config)
        if config.admin_database_url or config.api_processes != 1 or config.worker_replicas != 1:
            raise TopologyError(
                "compose mode runs the file's shape only: no external server, one api process, one worker, "
                "the database as broker"
            )
        refused = sorted(set(config.extra_env) - set(COMPOSE_TUNABLES))
        if refused:
            raise TopologyError(
                f"compose mode passes only {', '.join(COMPOSE_TUNABLES)} to its containers, not {', '.join(refused)}"
            )
        self.images = images or ComposeImages()
        self.project = project_name(config.name, self.run_id)
        self.postgres_password = secrets.token_urlsafe(24)
        self.command: list[str] = []
        self.client: Any = None
        self.ports: dict[str, int] = {}
        self.containers: dict[str, ContainerProcess] = {}

    # -- bring-up ----------------------------------------------------------------------------

    def up(self) -> None:
        started = time.monotonic()
        self._boundary("cleanup_stale")
        RUN_DIR.mkdir(mode=0o700, exist_ok=True)
        RUN_DIR.chmod(0o700)
        cleanup_stale(self.config.state_path)
        self.config.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.command = compose_command()
            self.client = docker_client()
        except EngineError as exc:
            raise TopologyError(str(exc)) from exc
        self.ports = {
            "postgres": free_port(),
            "api": free_port(self.config.api_port),
            "mock_platform": free_port(self.config.mock_port),
        }
        self._started = True
        self._save_state()
        if self.images.build:
            with self._phase("images"):
                self._compose("build", timeout_s=COMPOSE_TIMEOUT_S)
        with self._phase("compose_up"):  # postgres healthy -> provision -> migrate -> mock, api, worker
            self._compose("up", "-d", timeout_s=COMPOSE_TIMEOUT_S)
        self._boundary("containers")
        self._attach_containers()
        endpoint = Endpoint("127.0.0.1", self.ports["postgres"])
        self.admin_url = endpoint.url("postgres", self.postgres_password, "postgres").render_as_string(
            hide_password=False
        )
        self.postgres_version = server_version(self.admin_url)
        self.dsns = self._dsns(endpoint)
        with self._phase("ready"):
            self.wait_ready()
        self._boundary("records")
        self.timings["up_s"] = round(time.monotonic() - started, 3)
        self._write_env_file()
        self.write_probe()

    def compose_env(self) -> dict[str, str]:
        """What the Compose CLI gets (and, by the file's interpolation, each container its share of)."""
        env = base_env(without=COMPOSE_VARIABLES)
        env.update(
            POSTGRES_PASSWORD=self.postgres_password,
            APP_OWNER_PASSWORD=self.passwords.owner,
            APP_USER_PASSWORD=self.passwords.runtime,
            OPS_READER_PASSWORD=self.passwords.ops_reader,
            OPS_ADMIN_PASSWORD=self.passwords.ops_admin,
            E2E_POSTGRES_PORT=str(self.ports["postgres"]),
            E2E_API_PORT=str(self.ports["api"]),
            E2E_MOCK_PORT=str(self.ports["mock_platform"]),
        )
        env[KEYS_ENV] = self.key_ring
        env.update(self.images.env())
        env.update(self.config.extra_env)  # tunables only (checked in __init__)
        return env

    def _compose(self, *args: str, timeout_s: float) -> None:
        argv = [*self.command, "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        log_path = self.config.logs_dir / "compose.log"
        with log_path.open("ab") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            try:
                result = subprocess.run(
                    argv,
                    cwd=REPO_ROOT,
                    env=self.compose_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a terminal's Ctrl-C reaches us; we stop Compose
                    timeout=timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise TopologyError(f"`compose {args[0]}` took over {timeout_s:.0f} s; see {log_path}") from exc
        if result.returncode != 0:
            self._collect_logs()  # the failing one-shot's output is what explains it
            raise TopologyError(f"`compose {args[0]}` failed (exit {result.returncode}); see {log_path}")

    def _project_containers(self) -> dict[str, Any]:
        label = f"com.docker.compose.project={self.project}"
        found = {}
        for container in self.client.containers.list(all=True, filters={"label": label}):
            found[container.labels.get("com.docker.compose.service", container.name)] = container
        return found

    def _attach_containers(self) -> None:
        found = self._project_containers()
        missing = [name for name in LONG_RUNNING if name not in found]
        if missing:
            raise TopologyError(f"no container for {', '.join(missing)}; see {self.config.logs_dir / 'compose.log'}")
        for name, container in found.items():
            proc = ContainerProcess(
                name,
                [],
                {},
                REPO_ROOT,
                self.config.logs_dir / f"{LOG_NAMES.get(name, name)}.log",
                container_id=container.id,
                client=self.client,
            )
            proc.port = self.ports.get(name)
            self.containers[name] = proc
            if name in LONG_RUNNING:
                proc.follow()
                if name != "postgres":
                    self.processes[name] = proc  # the services the gates wait on and the faults kill
        self._save_state()

    # -- service control ----------------------------------------------------------------------

    def start_service(self, name: str) -> None:
        self.containers[name].start()

    def stop_postgres(self) -> None:
        self.containers["postgres"].stop(grace_s=10)

    def start_postgres(self) -> None:
        self.containers["postgres"].start()
        deadline = time.monotonic() + self.config.ready_timeout_s
        while self.containers["postgres"].state().get("Health", {}).get("Status") != "healthy":
            if time.monotonic() > deadline:
                raise TopologyError("postgres container not healthy again in time")
            time.sleep(0.2)

    # -- teardown -----------------------------------------------------------------------------

    def down(self) -> None:
        """Logs and state first (the containers still exist), then ``down -v``: containers, network, volume."""
        with interrupts.shielded():
            if not self._started:
                return
            self._started = False
            with contextlib.suppress(Exception):
                self._collect_logs()
            if self.dsns is not None:
                with contextlib.suppress(Exception):
                    self.write_probe()
            taken_down = compose_down(self.command, self.project, self.config.logs_dir / "compose.log", base_env())
            self.config.env_path.unlink(missing_ok=True)
            if taken_down:  # otherwise the record stays, and the next run of this name takes it down
                self.config.state_path.unlink(missing_ok=True)

    def _collect_logs(self) -> None:
        if self.client is None:
            return
        for name, container in self._project_containers().items():
            proc = self.containers.get(name)
            if proc is not None:
                proc.write_full_log()
                continue
            path = self.config.logs_dir / f"{LOG_NAMES.get(name, name)}.log"
            path.write_bytes(container.logs(stdout=True, stderr=True))

    # -- records ------------------------------------------------------------------------------

    def _save_state(self) -> None:
        state = {
            "name": self.config.name,
            "run_id": self.run_id,
            "owner_pid": os.getpid(),
            "mode": "compose",
            "compose_project": self.project,
            "compose_command": self.command,
            "logs_dir": str(self.config.logs_dir),
            "admin_url": None,
            "database": self.database,
            "keep": False,
            "processes": {name: proc.record() for name, proc in self.processes.items()},
        }
        _write_private(self.config.state_path, json.dumps(state, indent=2))

    def probe(self) -> dict[str, Any]:
        probe = super().probe()
        probe["mode"] = "compose"
        probe["postgres"]["pid"] = self.containers["postgres"].pid if "postgres" in self.containers else None
        probe["compose"] = {
            "project": self.project,
            "cli": " ".join(self.command),
            "file": COMPOSE_FILE.name,
            "images": self.images.env() or "registry defaults",
            "containers": {name: container_record(proc) for name, proc in sorted(self.containers.items())},
        }
        return probe

    def secrets(self) -> list[str]:
        return [*super().secrets(), self.postgres_password]


def container_record(proc: ContainerProcess) -> dict[str, Any]:
    """Id, image and health of one container; never its configuration (its environment holds passwords)."""
    try:
        container = proc.client.containers.get(proc.container_id)
        attrs = container.attrs
    except Exception as exc:
        return {"id": proc.container_id, "error": redact_dsn(str(exc))}
    state = attrs.get("State", {})
    return {
        "id": container.id,
        "name": container.name,
        "image": attrs.get("Config", {}).get("Image"),
        "image_id": attrs.get("Image"),
        "status": state.get("Status"),
        "health": state.get("Health", {}).get("Status"),
        "exit_code": state.get("ExitCode"),
        "restart_count": attrs.get("RestartCount"),
        "started_at": state.get("StartedAt"),
        "pid": state.get("Pid") or None,
        "crashes": proc.crashes,
        "log": proc.log_path.name,
    }
