"""Bring-up and teardown leave nothing behind: not after down, not after Ctrl-C, not after SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from scripts.harness import REPO_ROOT
from scripts.topology import Topology, TopologyConfig
from scripts.topology.lifecycle import RUN_DIR, Dsns
from scripts.topology.postgres import postmaster_pid

from .interrupting import CLI_ENV, STOP_WITHIN_S, assert_nothing_left, postgres_processes_for, start_paused

pytestmark = pytest.mark.slow


def recorded(state: dict) -> tuple[list[int], str | None]:
    pids = [record["pid"] for record in state["processes"].values() if record.get("pid")]
    return pids, state.get("pgdata")


def test_down_leaves_no_process(test_artifacts: Path) -> None:
    config = TopologyConfig(artifact_dir=test_artifacts / "lifecycle-down", name="pytest-down")
    with Topology(config) as topo:
        assert topo.embedded is not None
        pgdata = str(topo.embedded.pgdata)
        assert postmaster_pid(topo.embedded.pgdata) is not None
        pids = [p.pid for p in topo.processes.values() if p.pid]
        children = [c.pid for pid in pids for c in psutil.Process(pid).children(recursive=True)]
        probe = json.loads((config.artifact_dir / "p8_topology_probe.json").read_text())
        assert set(probe["services"]) == {"mock_platform", "api", "worker"}
        assert probe["dsns"]["broker"].startswith("sqla+postgresql://app_user:***@")
        assert topo.passwords.runtime not in json.dumps(probe)
        assert (config.env_path.stat().st_mode & 0o777) == 0o600
    assert_nothing_left(pids + children, pgdata)
    assert not config.state_path.exists()


def start_cli_up(name: str, artifact_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.topology", "up", "--name", name, "--artifact-dir", str(artifact_dir)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=CLI_ENV,
    )


def cli_down(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.topology", "down", "--name", name],
        cwd=REPO_ROOT,
        env=CLI_ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_for_state(name: str, service: str, timeout_s: float = 60) -> dict:
    path = RUN_DIR / f"{name}.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = json.loads(path.read_text())
            if service in state.get("processes", {}):
                return state
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{service} never recorded in {path}")


# Every boundary of bring-up (scripts/topology/lifecycle.py), then the report after it.
UP_STEPS = (
    "cleanup_stale",
    "postgres",
    "provision",
    "migrate",
    "processes",
    "spawn_mock_platform",
    "spawn_api",
    "spawn_worker",
    "ready",
    "records",
    "exit",
)


@pytest.mark.parametrize(
    ("step", "sig"),
    [pytest.param(step, signal.SIGINT, id=f"{step}-SIGINT") for step in UP_STEPS]
    + [pytest.param(step, signal.SIGTERM, id=f"{step}-SIGTERM") for step in ("provision", "spawn_worker", "exit")],
)
def test_interrupted_bring_up_tears_down(test_artifacts: Path, step: str, sig: signal.Signals) -> None:
    name = f"pytest-interrupt-{step}-{sig.name.lower()}"
    argv = ["-m", "scripts.topology", "up", "--name", name, "--artifact-dir", str(test_artifacts / name)]
    paused = start_paused(argv, step, test_artifacts / f"{name}.out")
    state_path = RUN_DIR / f"{name}.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"processes": {}}
    code, took_s = paused.interrupt(sig)
    assert code == 130, paused.text()
    assert took_s < STOP_WITHIN_S, f"took {took_s:.1f} s to stop"
    assert "interrupted: topology torn down" in paused.text()
    pids, pgdata = recorded(state)
    assert_nothing_left(pids + paused.descendants, pgdata)
    assert not state_path.exists() and not state_path.with_suffix(".env").exists()


def test_killed_run_is_cleaned_up_by_the_next(test_artifacts: Path) -> None:
    name = "pytest-sigkill"
    up = start_cli_up(name, test_artifacts / name)
    state = wait_for_state(name, "worker")
    up.kill()  # no teardown runs: the server and children survive (docs/architecture.md, "Facts about our parts")
    up.wait(timeout=10)
    pids, pgdata = recorded(state)
    assert pgdata and postgres_processes_for(pgdata), "the embedded server should outlive its parent"
    config = TopologyConfig(artifact_dir=test_artifacts / f"{name}-next", name=name)
    with Topology(config) as successor:  # the next run with this name finds and stops the leftovers
        assert_nothing_left(pids, pgdata)
        assert successor.embedded is not None and str(successor.embedded.pgdata) != pgdata


def test_down_cleans_up_a_killed_run(test_artifacts: Path) -> None:
    name = "pytest-sigkill-down"
    up = start_cli_up(name, test_artifacts / name)
    state = wait_for_state(name, "worker")
    up.kill()
    up.wait(timeout=10)
    pids, pgdata = recorded(state)
    result = cli_down(name)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["found"] is True and report["stopped_postgres"] is True
    assert_nothing_left(pids, pgdata)


def test_the_probe_names_the_broker_that_ran(tmp_path: Path) -> None:
    """With another broker (scale-out on RabbitMQ) the evidence must not claim the database was the broker."""
    config = TopologyConfig(artifact_dir=tmp_path, extra_env={"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1//"})
    topo = Topology(config)
    topo.dsns = Dsns("a", "b", "sqla+postgresql://app_user:pw@/db", "d", "e", "f", "g")
    assert topo.broker_url == "amqp://guest:guest@127.0.0.1//"
    assert Topology(TopologyConfig(artifact_dir=tmp_path)).config.extra_env == {}
