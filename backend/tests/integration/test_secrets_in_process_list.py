"""No secret on any command line: what `ps` shows of every process while the topology runs.

DSNs, passwords and keys travel by environment (readable only by the process owner), never by argv
(readable by every user of the machine). The scan uses the evidence pack's secret shapes plus the
run's own generated passwords; a planted command line proves the scan would notice.
"""

from __future__ import annotations

import subprocess
import sys

import psutil

from scripts.phase8.evidence import SECRET_PATTERNS
from scripts.topology import Topology


def command_lines() -> list[str]:
    lines = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline")
        if cmdline:
            lines.append(" ".join(cmdline))
    return lines


def leaks(lines: list[str], secrets: list[str]) -> list[str]:
    return [
        line[:80]
        for line in lines
        if any(secret in line for secret in secrets) or any(p.search(line) for p in SECRET_PATTERNS.values())
    ]


def test_no_process_shows_a_secret_on_its_command_line(topology: Topology) -> None:
    secrets = [s for s in topology.secrets() if len(s) >= 8]
    assert secrets, "the run generated passwords to look for"
    lines = command_lines()
    assert any("app.api_server" in line for line in lines) and any("app.worker" in line for line in lines)
    assert any("postgres" in line for line in lines)
    assert leaks(lines, secrets) == []


def test_a_secret_on_a_command_line_would_be_found(topology: Topology) -> None:
    password = topology.secrets()[0]
    planted = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", f"--password={password}"])
    try:
        assert len(leaks(command_lines(), [password])) == 1
    finally:
        planted.kill()
        planted.wait()
