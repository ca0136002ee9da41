"""Child processes of the topology: spawned in their own session, logged to a file, stopped as a group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """``preferred`` when it is free, otherwise any free port the OS hands out."""
    candidates = ([preferred] if preferred else []) + [0]
    for candidate in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free TCP port")


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    port: int | None = None
    attached_pid: int | None = None  # a process another run started (attach mode)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping it stops its children too
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else self.attached_pid

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            return self.attached_pid is not None and psutil.Process(self.attached_pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def stop(self, grace_s: float = 10.0, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None:
            return
        stop_group(self.process.pid, grace_s, sig)
        self.process.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, as a fault test wants it."""
        self.stop(grace_s=0, sig=signal.SIGKILL)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def record(self) -> dict[str, Any]:
        created = None
        if self.pid:
            with contextlib.suppress(psutil.NoSuchProcess):
                created = psutil.Process(self.pid).create_time()
        return {"pid": self.pid, "create_time": created, "port": self.port, "log": str(self.log_path)}


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return members


def stop_group(pgid: int, grace_s: float, sig: signal.Signals = signal.SIGTERM) -> None:
    """Signal a process group, wait up to ``grace_s`` for it to go, then SIGKILL what is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and group_members(pgid):
        time.sleep(0.1)
    if group_members(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and group_members(pgid):
            time.sleep(0.05)


def stop_recorded(record: dict[str, Any], grace_s: float = 5.0) -> bool:
    """Stop a process group recorded by an earlier run, if that exact process still lives."""
    pid, created = record.get("pid"), record.get("create_time")
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > 1:
            return False  # the pid was reused by an unrelated process
    except psutil.NoSuchProcess:
        # The leader is gone, but children in its group may remain.
        if not group_members(pid):
            return False
    stop_group(pid, grace_s)
    return True
