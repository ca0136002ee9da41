"""The privilege audit passes on the migrated schema and fails on each kind of drift it guards:
a new tenant table without forced RLS, a write grant to a read-only role, a grant to PUBLIC.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import Engine, text

from scripts.harness import REPO_ROOT
from scripts.topology import Topology


def audit(topology: Topology) -> tuple[int, dict[str, Any]]:
    env = {
        **os.environ,
        "OPS_DATABASE_URL": topology.dsns.ops,
        "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'backend'}",
    }
    result = subprocess.run(
        [sys.executable, "scripts/identity/audit_privileges.py"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, json.loads(result.stdout)


def test_the_migrated_schema_is_least_privilege(topology: Topology) -> None:
    code, report = audit(topology)
    assert (code, report["violations"]) == (0, [])
    roles = {role["rolname"]: role for role in report["roles"]}
    assert set(roles) == {"app_user", "app_rw", "app_ro", "ops_reader"}
    assert "app_rw" in roles["app_user"]["member_of"]
    assert len(report["tenant_tables"]) >= 10  # every tenant table was looked at


@pytest.mark.parametrize(
    ("drift", "undo", "expected"),
    [
        (
            "CREATE TABLE audit_drift (id int, tenant_id uuid)",
            "DROP TABLE audit_drift",
            "table audit_drift has tenant_id but row-level security is not enabled and forced",
        ),
        (
            "GRANT INSERT ON attribution_results TO app_ro",
            "REVOKE INSERT ON attribution_results FROM app_ro",
            "app_ro (read-only) has INSERT on attribution_results",
        ),
        (
            "GRANT SELECT ON tenants TO PUBLIC",
            "REVOKE SELECT ON tenants FROM PUBLIC",
            "PUBLIC has SELECT on tenants",
        ),
        (
            "GRANT SELECT ON kombu_message TO app_ro",
            "REVOKE SELECT ON kombu_message FROM app_ro",
            "app_ro can read broker table kombu_message, which no read-only path needs",
        ),
    ],
)
def test_drift_fails_the_audit(topology: Topology, owner_engine: Engine, drift: str, undo: str, expected: str) -> None:
    with owner_engine.begin() as conn:
        conn.execute(text(drift))
    try:
        code, report = audit(topology)
        assert code == 1
        assert expected in report["violations"]
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text(undo))
    assert audit(topology)[0] == 0  # and the same audit passes once the drift is gone
