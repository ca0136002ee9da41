"""scripts/identity/assert_runtime_identity.py: passes for app_user, fails for everything more powerful."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.harness import REPO_ROOT
from scripts.topology import Topology

SCRIPT = REPO_ROOT / "scripts" / "identity" / "assert_runtime_identity.py"


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_runtime_dsn_passes_and_writes_the_probe(topology: Topology, tmp_path: Path) -> None:
    assert topology.dsns is not None
    output = tmp_path / "runtime_db_probe.json"
    result = run_script("--dsn", topology.dsns.runtime_async, "--output", str(output))
    assert result.returncode == 0, result.stderr
    probe = json.loads(output.read_text())
    assert probe["status"] == "passed"
    assert probe["identity"]["db_user"] == "app_user"
    assert probe["identity"]["rolsuper"] is False and probe["identity"]["rolbypassrls"] is False
    assert topology.passwords.runtime not in output.read_text() + result.stdout + result.stderr


@pytest.mark.parametrize(
    ("which", "expected_problem"),
    [
        ("migration", "DB user is 'app_owner'"),
        ("ops", "rolbypassrls=true"),
        ("superuser", "rolsuper=true"),
    ],
)
def test_more_powerful_identities_fail(topology: Topology, which: str, expected_problem: str) -> None:
    assert topology.dsns is not None and topology.admin_url is not None
    dsn = topology.admin_url if which == "superuser" else getattr(topology.dsns, which)
    result = run_script("--dsn", dsn)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected_problem in result.stderr
    assert json.loads(result.stdout)["status"] == "failed"


def test_unreachable_dsn_exits_2_without_traceback() -> None:
    result = run_script("--dsn", "postgresql://app_user:secret-pw@127.0.0.1:1/nowhere", "--timeout", "2")
    assert result.returncode == 2
    assert "cannot connect" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "secret-pw" not in result.stderr + result.stdout


def test_missing_dsn_is_a_usage_error() -> None:
    env = {k: v for k, v in __import__("os").environ.items() if "DATABASE_URL" not in k}
    result = run_script(env=env)
    assert result.returncode == 2
    assert "no DSN" in result.stderr
