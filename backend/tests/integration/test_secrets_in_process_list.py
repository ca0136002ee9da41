"""No secret on any command line: what `ps` shows of every process while the topology runs, and
while an operator script that reads the database runs beside it.

DSNs, passwords and keys travel by environment (readable only by the process owner), never by argv
(readable by every user of the machine). The scan uses the evidence pack's secret shapes plus the
run's own generated passwords; a planted command line proves the scan would notice, and the old way
of passing the dashboards' DSN (as an argument) is the control for the scan during a run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from scripts.harness import REPO_ROOT
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


def command_lines_while(argvs: list[list[str]], env: dict[str, str]) -> list[str]:
    """Every command line seen, sampled as fast as psutil allows, while ``argvs`` run one after another."""
    seen: set[str] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.update(command_lines())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for argv in argvs:
            subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, timeout=120, check=True)
    finally:
        done.set()
        sampler.join(timeout=10)
    return sorted(seen)


SCAN_ATTEMPTS = 3


@pytest.mark.parametrize("dsn_argument", ["-", "OPS_DATABASE_URL"])
def test_no_secret_on_a_command_line_while_the_dashboards_run(
    topology: Topology, tmp_path: Path, dsn_argument: str
) -> None:
    """The P4 dashboards read the DSN from the environment (``-``); given as an argument (the control)
    the same run shows the ops_reader password to anyone running ps."""
    env = {**os.environ, **topology.operator_env, "PYTHON": sys.executable}
    probe = tmp_path / "runtime_db_probe.json"
    dsn = "-" if dsn_argument == "-" else env[dsn_argument]
    argvs = [
        [sys.executable, "scripts/identity/assert_runtime_identity.py", "--output", str(probe)],
        ["scripts/ci/run_b07_p4_operational_queries.sh", dsn, str(probe), str(tmp_path / "sql")],
    ]
    # The scan samples: on a busy machine the step can start and end between two samples. Every line
    # seen in any attempt is judged; the attempts only stop once the scan has seen the step at all.
    lines: list[str] = []
    for _attempt in range(SCAN_ATTEMPTS):
        lines += command_lines_while(argvs, env)
        if any("run_b07_p4_operational_queries" in line for line in lines):
            break
    assert any("run_b07_p4_operational_queries" in line for line in lines), "the scan saw the step run"
    found = leaks(lines, [s for s in topology.secrets() if len(s) >= 8])
    if dsn_argument == "-":
        assert found == []
    else:
        assert found, "control: a DSN passed as an argument must be caught"
