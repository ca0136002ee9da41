"""Every command in the P4 runbooks is real: each line of each bash block runs, in order, against
the live topology with the operator environment, and exits 0.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from scripts.harness import REPO_ROOT
from scripts.topology import Topology

from ..conftest import engine_for

RUNBOOKS = REPO_ROOT / "docs" / "ops" / "b07_p4" / "runbooks"
ORDER = ("first_traffic_checklist.md", "kill_switch_runbook.md", "incident_response_runbook.md")
BASH_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def commands(runbook: Path) -> list[str]:
    return [line for block in BASH_BLOCK.findall(runbook.read_text()) for line in block.splitlines() if line.strip()]


def test_every_runbook_has_commands() -> None:
    assert sorted(p.name for p in RUNBOOKS.glob("*.md")) == sorted(ORDER)
    assert all(len(commands(RUNBOOKS / name)) >= 2 for name in ORDER)


@pytest.mark.parametrize("runbook", ORDER)
def test_runbook_commands_run(topology: Topology, runbook: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        **topology.operator_env,
        "B07_P4_ARTIFACT_DIR": str(tmp_path.parent / "p4-runbooks"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    Path(env["B07_P4_ARTIFACT_DIR"]).mkdir(exist_ok=True)
    for command in commands(RUNBOOKS / runbook):
        result = subprocess.run(
            ["bash", "-c", f"set -euo pipefail; {command}"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{runbook}: {command}\n{result.stdout[-800:]}\n{result.stderr[-800:]}"
    if runbook == ORDER[0]:
        out = Path(env["B07_P4_ARTIFACT_DIR"]) / "sql"
        assert sorted(p.name for p in out.glob("*.csv")) == [
            "01_monthly_spend.csv",
            "02_cache_hit_rate.csv",
            "03_breaker_shutoff_state.csv",
            "04_provider_cost_latency_distribution.csv",
        ]
        header = next(csv.reader((out / "02_cache_hit_rate.csv").open()))
        assert header == ["endpoint", "served", "cache_hits", "hit_rate_pct"]
        assert_csvs_agree_with_the_ledger(topology, out)


def assert_csvs_agree_with_the_ledger(topology: Topology, out: Path) -> None:
    """The dashboards are the ledger, summed: calls, spend and cache hits match a direct count."""
    assert topology.dsns is not None
    engine = engine_for(topology.dsns.ops)
    try:
        with engine.connect() as conn:
            calls, spent, hits = conn.execute(
                text(
                    "SELECT count(*), coalesce(sum(cost_cents), 0), count(*) FILTER (WHERE was_cached) FROM llm_api_calls"
                )
            ).one()
    finally:
        engine.dispose()
    spend = list(csv.DictReader((out / "01_monthly_spend.csv").open()))
    cache = list(csv.DictReader((out / "02_cache_hit_rate.csv").open()))
    assert sum(int(r["calls"]) for r in spend) == calls
    assert sum(Decimal(r["spent_cents"]) for r in spend) == spent
    assert sum(int(r["cache_hits"]) for r in cache) == hits


def test_queries_refuse_a_privileged_probe(tmp_path: Path) -> None:
    """Negative control: a probe showing a superuser runtime stops the dashboards with exit 1."""
    probe = tmp_path / "runtime_db_probe.json"
    probe.write_text('{"identity": {"db_user": "postgres", "rolsuper": true, "rolbypassrls": true}}')
    script = REPO_ROOT / "scripts" / "ci" / "run_b07_p4_operational_queries.sh"
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        [str(script), "postgresql://x@127.0.0.1:1/x", str(probe), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "not an unprivileged app_user" in result.stderr
    missing = subprocess.run(
        [str(script), "postgresql://x@127.0.0.1:1/x", str(tmp_path / "none.json"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2
