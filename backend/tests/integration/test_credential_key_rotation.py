"""Rotating the key that seals credentials, as docs/ops/secrets_at_rest.md tells an operator to:
the new key first in the ring, sync the tenant context keys, restart api and worker, re-seal every value
(scripts/ops/reseal_credentials.py), remove the old key, restart again. Webhooks verify and
reconciliations run throughout; a value the re-seal missed is the control that shows the old key
really is gone at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from app.core.sealing import KEYS_ENV, key_ring, new_key_ring
from app.tenants.credentials import PLATFORM_API_KEYS, WEBHOOK_SECRETS
from app.tenants.service import ProvisionedTenant, create_tenant, rotate_webhook_secret
from scripts.harness import REPO_ROOT
from scripts.topology import Topology

from ..conftest import disposed_after, own_topology
from .test_b07_p8_topology_closure_pack import NOW, connect_platform, platform_txn, run_reconciliation, touch
from .test_credentials_at_rest import sealed_of
from .test_migration_round_trip import alembic
from .webhook_client import post_webhook

RESEAL = REPO_ROOT / "scripts" / "ops" / "reseal_credentials.py"


@pytest.fixture(scope="module")
def rotating(test_artifacts: Path) -> Iterator[Topology]:
    yield from own_topology(test_artifacts, "key-rotation")


@pytest.fixture(scope="module")
def engine(rotating: Topology) -> Iterator[Engine]:
    assert rotating.dsns is not None
    yield from disposed_after(rotating.dsns.runtime_sync)


def reseal(topo: Topology, *args: str, **env: str) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, str(RESEAL), *args],
        env={**os.environ, **topo.operator_env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, json.loads(result.stdout), result.stdout + result.stderr


def restart_with_ring(topo: Topology, ring: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the operator does: the ring in api's and worker's environment (and their own), the
    database told its tenant context keys (an upgrade with nothing to migrate), then restart."""
    topo.key_ring = ring
    monkeypatch.setenv(KEYS_ENV, ring)
    alembic(topo, "upgrade", "head")
    for service in ("api", "worker"):
        topo.stop_service(service, grace_s=2)
        topo.start_service(service)
    topo.wait_ready()


def accepted(topo: Topology, tenant: ProvisionedTenant, event_id: str, secret: str | None = None) -> int:
    with httpx.Client(base_url=topo.api_url, timeout=15) as api:
        return post_webhook(api, "touchpoints", tenant, touch(event_id, "c1", "email", NOW), secret=secret).status_code


def reconciled(topo: Topology, tenant: ProvisionedTenant) -> str:
    with httpx.Client(base_url=topo.api_url, timeout=15) as api:
        return str(run_reconciliation(api, tenant)["status"])


def test_rotate_reseal_and_remove_the_old_key(
    rotating: Topology, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_ring = rotating.key_ring
    old_kid = key_ring().current
    with engine.begin() as conn:
        tenant = create_tenant(conn, "rotating-merchant")
    with httpx.Client(base_url=rotating.api_url, timeout=15) as api, httpx.Client(base_url=rotating.mock_url) as mock:
        connect_platform(api, mock, tenant, [platform_txn("ch_rotating", 700, NOW)])
    assert accepted(rotating, tenant, "tp-0") == 202

    # 1. The new key goes first: values sealed under the old one still open, new ones use the new key.
    both = f"{new_key_ring('next')},{old_ring}"
    restart_with_ring(rotating, both, monkeypatch)
    assert accepted(rotating, tenant, "tp-1") == 202 and reconciled(rotating, tenant) == "succeeded"
    with engine.begin() as conn:
        rotated = rotate_webhook_secret(conn, tenant.context, grace_s=3600)
    assert {key_ring().key_id_of(v) for v in sealed_of(engine, tenant, WEBHOOK_SECRETS)} == {old_kid, "next"}
    code, check, _ = reseal(rotating, "--check")
    assert code == 1 and check["tables"]["platform_connections"]["older_key"] == 1

    # 2. Re-seal: every value under the new key, none printed.
    code, report, output = reseal(rotating)
    assert code == 0, output
    assert report["current_key_id"] == "next" and report["resealed"] == 2  # the first secret and the key
    assert report["tables"]["webhook_secrets"]["current_key"] == 1  # the rotated secret
    assert not any(v in output for v in (tenant.webhook_secret, rotated, f"sk_test_{tenant.tenant_id.hex}"))
    for sealed in (WEBHOOK_SECRETS, PLATFORM_API_KEYS):
        values = sealed_of(engine, tenant, sealed)
        assert {key_ring().key_id_of(v) for v in values} == {"next"}
        assert not any(v in output for v in values)
    code, check, _ = reseal(rotating, "--check")
    assert code == 0 and check["resealed"] == 0
    assert all(t["older_key"] == 0 and t["does_not_open"] == [] for t in check["tables"].values())

    # The control: a value sealed under the old key after the re-seal, as if the re-seal had missed it.
    monkeypatch.setenv(KEYS_ENV, old_ring)
    with engine.begin() as conn:
        straggler = create_tenant(conn, "missed-by-the-reseal")
    monkeypatch.setenv(KEYS_ENV, both)
    assert accepted(rotating, straggler, "tp-s0") == 202
    code, check, _ = reseal(rotating, "--check")
    assert code == 1 and check["tables"]["webhook_secrets"]["older_key"] == 1

    # 3. The old key removed: the re-sealed values still open; the missed one no longer does.
    restart_with_ring(rotating, both.split(",")[0], monkeypatch)
    assert accepted(rotating, tenant, "tp-2") == 202
    assert accepted(rotating, tenant, "tp-3", secret=rotated) == 202
    assert reconciled(rotating, tenant) == "succeeded"
    assert accepted(rotating, straggler, "tp-s1") == 401
    code, check, _ = reseal(rotating, "--check")
    assert code == 1 and check["tables"]["webhook_secrets"]["does_not_open"] == [str(straggler.tenant_id)]


def test_the_reseal_script_wants_the_owner_a_ring_and_no_dsn_on_its_command_line(rotating: Topology) -> None:
    assert rotating.dsns is not None
    code, report, output = reseal(rotating, MIGRATION_DATABASE_URL=rotating.dsns.ops)
    assert code == 2 and "must be owner of table" in report["error"]
    assert rotating.passwords.ops_reader not in output
    code, report, _ = reseal(rotating, **{KEYS_ENV: ""})
    assert code == 2 and f"{KEYS_ENV} is not set" in report["error"]
    code, report, _ = reseal(rotating, MIGRATION_DATABASE_URL="")
    assert code == 2 and "MIGRATION_DATABASE_URL" in report["error"]
    usage = subprocess.run(
        [sys.executable, str(RESEAL), "--dsn", "postgresql://app_owner@nowhere/db"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert usage.returncode == 2 and "unrecognized arguments" in usage.stderr
    helped = subprocess.run([sys.executable, str(RESEAL), "--help"], capture_output=True, text=True, check=False)
    assert helped.returncode == 0 and "secrets_at_rest.md" in helped.stdout
