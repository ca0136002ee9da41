"""Interrupt an operator command at a named step and check that it stopped cleanly.

The command runs with ``HARNESS_TEST_PAUSE_AT=<step>`` (scripts/interrupts.py), so it waits at that
step boundary until signalled: the test never races a signal against a fast step. Its output goes
to a file, never to a pipe nobody reads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from scripts.harness import REPO_ROOT
from scripts.interrupts import PAUSE_ENV

CLI_ENV = {**os.environ}
STOP_WITHIN_S = 15.0  # the promise to an operator who presses Ctrl-C


def live_pids(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def postgres_processes_for(pgdata: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and pgdata in " ".join(proc.info["cmdline"] or []):
            found.append(proc.info["pid"])
    return found


def assert_nothing_left(pids: list[int], pgdata: str | None) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (live_pids(pids) or (pgdata and postgres_processes_for(pgdata))):
        time.sleep(0.2)
    assert live_pids(pids) == []
    if pgdata:
        assert postgres_processes_for(pgdata) == []
        assert not Path(pgdata).exists()


@dataclass
class Paused:
    """A command waiting at ``step``; ``descendants`` are every process it had started by then."""

    process: subprocess.Popen[bytes]
    output: Path
    step: str
    descendants: list[int]

    def interrupt(self, sig: signal.Signals) -> tuple[int, float]:
        """Send ``sig``; returns the exit code and the seconds it took to exit."""
        sent = time.monotonic()
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()  # do not leak it into the rest of the suite; the assertion below fails
            code = self.process.wait()
        return code, time.monotonic() - sent

    def text(self) -> str:
        return self.output.read_text(errors="replace")


def start_and_wait(
    argv: list[str], output: Path, until: Callable[[str], bool], pause_at: str | None = None, timeout_s: float = 180
) -> Paused:
    """Start ``argv`` (a Python module or script and its flags) and wait until ``until(output so far)``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    env = {**CLI_ENV, PAUSE_ENV: pause_at} if pause_at else CLI_ENV
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, *argv],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + timeout_s
    while not until(output.read_text(errors="replace")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"condition never met (exit {process.returncode}):\n{output.read_text()[-3000:]}")
        time.sleep(0.1)
    descendants = [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    return Paused(process, output, pause_at or "", descendants)


def start_paused(argv: list[str], step: str, output: Path) -> Paused:
    """Start ``argv`` with a pause at ``step`` and wait until it is there."""
    return start_and_wait(argv, output, lambda text: f"paused at {step}" in text, pause_at=step)
