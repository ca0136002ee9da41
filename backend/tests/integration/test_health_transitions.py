"""Health goes unready naming the failed check when a dependency stops, and recovers when it returns.

These tests stop and start services, so they get a topology of their own.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.harness import REPO_ROOT, poll_until
from scripts.phase8.gates import GateContext, eg8_1_topology
from scripts.topology import Topology

from .conftest import own_topology

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def disruptable(test_artifacts: Path) -> Iterator[Topology]:
    yield from own_topology(test_artifacts, "disruptable", WORKER_PROBE_TIMEOUT_S="2", WORKER_PROBE_CACHE_S="0")


def wait_script(name: str, base_url: str, timeout: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / f"wait_for_e2e_{name}.py"),
            "--base-url",
            base_url,
            "--timeout",
            timeout,
            "--interval",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_worker_stopped_then_back(disruptable: Topology) -> None:
    url = disruptable.api_url
    assert wait_script("worker", url, "10").returncode == 0

    disruptable.stop_service("worker")
    response = httpx.get(f"{url}/health/worker", params={"fresh": "true"}, timeout=15)
    assert response.status_code == 503
    assert response.json()["failed"] == ["worker"]
    assert "no reply" in response.json()["checks"]["worker"]["error"]
    # Bounded by the probe timeout (2 s) plus its grace, not by Celery's sleep count (7-8 s seen).
    assert response.elapsed.total_seconds() < 4.5
    waited = wait_script("worker", url, "3")
    assert waited.returncode == 1
    assert "worker not ready" in waited.stderr and "failed checks: worker" in waited.stderr

    disruptable.start_service("worker")
    assert wait_script("worker", url, "60").returncode == 0


def test_database_stopped_then_back(disruptable: Topology) -> None:
    url = disruptable.api_url
    assert wait_script("health", url, "10").returncode == 0

    disruptable.stop_postgres()
    response = httpx.get(f"{url}/health/ready", timeout=15)
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]
    # A tenant request meanwhile gets a clear, retryable answer, not a 500.
    webhook = httpx.post(f"{url}/webhooks/touchpoints", content=b"{}", headers={"x-tenant-id": str(uuid.uuid4())})
    assert webhook.status_code == 503, webhook.text
    assert webhook.headers["retry-after"] == "1"
    assert webhook.json()["code"] == "database_unavailable"
    # So does a request whose first query goes through SQLAlchemy's pool rather than the intake's.
    bearer = {"Authorization": "Bearer ak_" + "x" * 43}
    authenticated = httpx.get(f"{url}/api/v1/me", headers=bearer, timeout=15)
    assert authenticated.status_code == 503, authenticated.text
    assert authenticated.headers["retry-after"] == "1"
    print("DEBUG", authenticated.status_code, authenticated.text)
    waited = wait_script("health", url, "3")
    assert waited.returncode == 1
    assert "failed checks: database" in waited.stderr

    disruptable.start_postgres()
    outcome = poll_until(f"{url}/health/ready", timeout_s=30, interval_s=0.2)
    assert outcome.ok, outcome.last_body
    assert wait_script("worker", url, "60").returncode == 0  # the worker reconnects to its broker too


def test_wait_script_against_nothing_names_the_problem() -> None:
    result = wait_script("health", "http://127.0.0.1:1", "1")
    assert result.returncode == 1
    assert "unreachable" in result.stderr


def test_stopped_worker_fails_eg8_1_naming_the_step(disruptable: Topology, tmp_path: Path) -> None:
    """Negative control for EG8.1: the gate fails, and its error points at the right log."""
    (tmp_path / "logs").mkdir()
    ctx = GateContext(tmp_path, "ci_subset", disruptable, ready_timeout_s=3)
    assert eg8_1_topology(ctx).status == "passed"  # control: the same gate passes with the worker up
    disruptable.stop_service("worker", grace_s=2)
    try:
        result = eg8_1_topology(GateContext(tmp_path, "ci_subset", disruptable, ready_timeout_s=3))
    finally:
        disruptable.start_service("worker")
    assert result.status == "failed"
    assert result.error == "worker_ready failed; see logs/eg8_1_*.log"
    assert "failed checks: worker" in (tmp_path / "logs" / "eg8_1_wait_worker.log").read_text()
