"""The orchestrator under Ctrl-C and SIGTERM: at every kind of step boundary and in the middle of a
running step it stops within seconds, exits 1, writes a failed summary naming the step and a valid
manifest, and leaves no process of its topology or its steps behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from scripts.topology.lifecycle import RUN_DIR

from .interrupting import STOP_WITHIN_S, Paused, assert_nothing_left, start_and_wait, start_paused

pytestmark = pytest.mark.slow

ORCHESTRATOR = "scripts/phase8/run_phase8_closure_pack.py"


def orchestrator_argv(artifact_dir: Path, name: str, *gates: str) -> list[str]:
    selection = [arg for gate in gates for arg in ("--gate", gate)]
    return [ORCHESTRATOR, "--ci-subset", "--artifact-dir", str(artifact_dir), "--topology-name", name, *selection]


def interrupt_and_check(paused: Paused, sig: signal.Signals, artifact_dir: Path, name: str) -> dict:
    """Signal the paused orchestrator; everything the issue promises must hold. Returns the summary."""
    state_path = RUN_DIR / f"{name}.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"processes": {}}
    code, took_s = paused.interrupt(sig)
    assert code == 1, paused.text()
    assert took_s < STOP_WITHIN_S, f"took {took_s:.1f} s to stop"
    summary = json.loads((artifact_dir / "phase8_gate_summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["interrupted"]["signal"] == sig.name
    verified = subprocess.run(["sha256sum", "-c", "--quiet", "manifest.sha256"], cwd=artifact_dir, check=False)
    assert verified.returncode == 0
    assert "<failure " in (artifact_dir / "junit.xml").read_text()  # CI tools show the run red too
    pids = [record["pid"] for record in state["processes"].values() if record.get("pid")]
    assert_nothing_left(pids + paused.descendants, state.get("pgdata"))
    assert not state_path.exists()
    return summary


@pytest.mark.parametrize(
    ("step", "gates", "sig"),
    [
        pytest.param("migrate", ("eg8_1_topology",), signal.SIGINT, id="bring-up-migrate"),
        pytest.param("ready", ("eg8_1_topology",), signal.SIGTERM, id="bring-up-ready"),
        pytest.param("eg8_1_topology", ("eg8_1_topology",), signal.SIGINT, id="before-first-gate"),
        pytest.param(
            "eg8_2_closure_pack", ("eg8_1_topology", "eg8_2_closure_pack"), signal.SIGTERM, id="between-gates"
        ),
        pytest.param("eg8_7_evidence_pack", ("eg8_7_evidence_pack",), signal.SIGINT, id="after-teardown"),
        pytest.param("evidence", ("eg8_1_topology",), signal.SIGINT, id="before-the-pack-is-written"),
    ],
)
def test_interrupt_at_a_step_boundary(tmp_path: Path, step: str, gates: tuple[str, ...], sig: signal.Signals) -> None:
    artifact_dir, name = tmp_path / "b07-phase8", f"pytest-phase8-at-{step}"
    paused = start_paused(orchestrator_argv(artifact_dir, name, *gates), step, tmp_path / "orchestrator.out")
    summary = interrupt_and_check(paused, sig, artifact_dir, name)
    assert step in summary["interrupted"]["during"]
    assert "interrupted during" in summary["error"] and step in summary["error"]


def test_interrupt_in_the_middle_of_a_gate(tmp_path: Path) -> None:
    """Not at a boundary: EG8.2's pytest step has started (it runs for tens of seconds) when SIGINT arrives."""
    artifact_dir, name = tmp_path / "b07-phase8", "pytest-phase8-mid-gate"
    step_log = artifact_dir / "logs" / "pytest_p8_topology.log"
    running = start_and_wait(
        orchestrator_argv(artifact_dir, name, "eg8_1_topology", "eg8_2_closure_pack"),
        tmp_path / "orchestrator.out",
        until=lambda _: step_log.exists(),
    )
    time.sleep(1.0)  # the step's own test process is running now
    step_pids = [child.pid for child in psutil.Process(running.process.pid).children(recursive=True)]
    running.descendants += step_pids
    summary = interrupt_and_check(running, signal.SIGINT, artifact_dir, name)
    assert summary["error"].startswith("eg8_2_closure_pack: interrupted during eg8_2_closure_pack")
