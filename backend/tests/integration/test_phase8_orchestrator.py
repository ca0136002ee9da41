"""The orchestrator under Ctrl-C: a failed summary naming the step, a valid manifest, and no process
of the topology left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from scripts.harness import REPO_ROOT

pytestmark = pytest.mark.slow


def test_interrupt_writes_a_failed_summary_and_leaves_nothing(tmp_path: Path) -> None:
    artifact_dir = tmp_path / "b07-phase8"
    orchestrator = subprocess.Popen(
        [
            sys.executable,
            "scripts/phase8/run_phase8_closure_pack.py",
            "--ci-subset",
            "--artifact-dir",
            str(artifact_dir),
            "--topology-name",
            "pytest-phase8-interrupt",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'backend'}"},
    )
    assert orchestrator.stderr is not None
    deadline = time.monotonic() + 120
    for line in orchestrator.stderr:  # wait until the first gate is done and the second is running
        if "eg8_1_topology:" in line or time.monotonic() > deadline:
            break
    probe = json.loads((artifact_dir / "p8_topology_probe.json").read_text())
    pids = [record["pid"] for record in probe["services"].values()] + [probe["postgres"]["pid"]]
    time.sleep(1.0)
    orchestrator.send_signal(signal.SIGINT)
    assert orchestrator.wait(timeout=120) == 1

    summary = json.loads((artifact_dir / "phase8_gate_summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"].startswith("eg8_2_closure_pack: interrupted during eg8_2_closure_pack")
    verified = subprocess.run(["sha256sum", "-c", "--quiet", "manifest.sha256"], cwd=artifact_dir, check=False)
    assert verified.returncode == 0

    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    end = time.monotonic() + 15
    while any(alive(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.2)
    assert [pid for pid in pids if alive(pid)] == []
