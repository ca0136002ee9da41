"""The Docker engine and the Compose CLI, as compose mode needs them.

A machine of this project's CI class has no engine running, no iptables and no registry:
``dockerd`` then starts with its own networking off (``--iptables=false --ip-masq=false
--bridge=none``; user-defined networks still resolve service names) on the ``vfs`` storage driver,
which needs no kernel overlay support. Only an engine started here is ever stopped here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCKERD_FLAGS = ("--iptables=false", "--ip-masq=false", "--bridge=none", "--storage-driver=vfs")
ENGINE_START_TIMEOUT_S = 60.0


class EngineError(RuntimeError):
    """No engine, no Compose CLI, or the engine would not start; the message says which."""


def engine_answers(timeout_s: float = 10.0) -> bool:
    """``docker info`` succeeds: a daemon is up and this user may talk to it."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def compose_command() -> list[str]:
    """``docker compose`` (v2) where the plugin exists, else ``docker-compose`` (v1)."""
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], stdin=subprocess.DEVNULL, capture_output=True, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise EngineError("neither `docker compose` (v2) nor `docker-compose` (v1) is installed")


@dataclass
class StartedEngine:
    """A ``dockerd`` this process started; ``stop`` ends it and nothing else."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_dockerd(log_path: Path) -> StartedEngine:
    """Start ``dockerd`` with this machine class's flags and wait until it answers."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineError("no Docker engine answers and `dockerd` is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise EngineError("no Docker engine answers, and starting `dockerd` needs root (run as root or start one)")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [dockerd, *DOCKERD_FLAGS],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not the engine mid-teardown
        )
    engine = StartedEngine(process, log_path)
    deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineError(f"dockerd exited with {process.returncode}; see {log_path}")
        if engine_answers(timeout_s=5):
            return engine
        time.sleep(0.5)
    engine.stop()
    raise EngineError(f"dockerd did not answer within {ENGINE_START_TIMEOUT_S:.0f} s; see {log_path}")


@contextlib.contextmanager
def engine_running(log_path: Path) -> Iterator[StartedEngine | None]:
    """An engine for the block: the one already answering (left alone), or one started and then stopped."""
    if engine_answers():
        yield None
        return
    engine = start_dockerd(log_path)
    try:
        yield engine
    finally:
        engine.stop()


def docker_client() -> Any:
    """The Docker SDK's client, negotiating the API version with whatever engine answers.

    The SDK (``docker`` package) is installed by the compose nox session only, so it is imported here
    and typed loosely: the rest of the project type-checks without it.
    """
    try:
        import docker  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise EngineError("the Docker SDK is missing: pip install docker (nox -s compose installs it)") from exc
    return docker.from_env(version="auto", timeout=60)
