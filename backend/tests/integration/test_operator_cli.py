"""The operator CLI end to end against the live topology: a tenant it creates can sign webhooks and
call the API; a key it revokes stops at once (401); a rotated secret honours its grace; refusals
(unknown tenant, a DSN that is not ops_admin's, no key on stdin) are clear exits 1 and 2; and the
new secrets it prints appear once on stdout and nowhere else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from app.tenants.service import ProvisionedTenant
from scripts.harness import REPO_ROOT
from scripts.topology import Topology

from .webhook_client import post_webhook, touchpoint

pytestmark = pytest.mark.slow


def cli(
    topology: Topology, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {**os.environ, **topology.operator_env}
    return subprocess.run(
        [sys.executable, "-m", "scripts.ops.tenants", *args],
        cwd=REPO_ROOT,
        env={**base, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="module")
def created(topology: Topology) -> dict[str, Any]:
    return ok(cli(topology, "create", "--name", "cli-tenant", "--json"))


def as_tenant(created: dict[str, Any], api_key: str | None = None, secret: str | None = None) -> ProvisionedTenant:
    return ProvisionedTenant(
        uuid.UUID(created["tenant_id"]), created["user_id"], api_key or created["api_key"],
        secret or created["webhook_secret"],
    )  # fmt: skip


def test_a_created_tenant_can_sign_webhooks_and_call_the_api(api: httpx.Client, created: dict[str, Any]) -> None:
    tenant = as_tenant(created)
    assert post_webhook(api, "touchpoints", tenant, touchpoint()).status_code == 202
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {tenant.api_key}"}).status_code == 200


def test_a_revoked_key_stops_at_once(topology: Topology, api: httpx.Client, created: dict[str, Any]) -> None:
    tenant = created["tenant_id"]
    issued = ok(cli(topology, "keys", "issue", "--tenant", tenant, "--label", "ci", "--json"))
    me = {"Authorization": f"Bearer {issued['api_key']}"}
    assert api.get("/api/v1/me", headers=me).status_code == 200
    keys = ok(cli(topology, "keys", "list", "--tenant", tenant, "--json"))["keys"]
    assert issued["api_key"] not in json.dumps(keys)  # a listing shows ids, never keys
    [labelled] = [key for key in keys if key["label"] == "ci"]
    ok(cli(topology, "keys", "revoke", "--tenant", tenant, "--key-id", labelled["id"], "--json"))
    assert api.get("/api/v1/me", headers=me).status_code == 401
    first = {"Authorization": f"Bearer {created['api_key']}"}
    assert api.get("/api/v1/me", headers=first).status_code == 200  # control: the other key still works
    again = cli(topology, "keys", "revoke", "--tenant", tenant, "--key-id", labelled["id"])
    assert again.returncode == 1 and "no active key" in again.stderr


def test_rotation_honours_the_grace(topology: Topology, api: httpx.Client) -> None:
    made = ok(cli(topology, "create", "--name", "cli-rotation", "--json"))
    graced = ok(cli(topology, "webhook-secret", "rotate", "--tenant", made["tenant_id"], "--grace-s", "300", "--json"))
    old, new = as_tenant(made), as_tenant(made, secret=graced["webhook_secret"])
    assert post_webhook(api, "touchpoints", old, touchpoint()).status_code == 202  # within the grace
    assert post_webhook(api, "touchpoints", new, touchpoint()).status_code == 202
    at_once = ok(cli(topology, "webhook-secret", "rotate", "--tenant", made["tenant_id"], "--grace-s", "0", "--json"))
    assert post_webhook(api, "touchpoints", new, touchpoint()).status_code == 401  # no grace: gone at once
    assert (
        post_webhook(api, "touchpoints", as_tenant(made, secret=at_once["webhook_secret"]), touchpoint()).status_code
        == 202
    )


def test_budget_and_platform_key(topology: Topology, created: dict[str, Any], ops_engine: Engine) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")
    tenant = created["tenant_id"]
    budget = ok(cli(topology, "budget", "set", "--tenant", tenant, "--user", "owner", "--month", month,
                    "--limit-cents", "1234", "--json"))  # fmt: skip
    assert budget["limit_cents"] == 1234
    key = f"sk_test_{uuid.uuid4().hex}"
    stored = cli(topology, "platform-key", "set", "--tenant", tenant, "--json", stdin=key + "\n")
    assert ok(stored) == {"tenant_id": tenant, "platform": "stripe", "stored": "sealed"}
    with ops_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT count(*) FROM platform_connections WHERE tenant_id = :t"), {"t": tenant}
        ).scalar_one()
    assert rows == 1
    empty = cli(topology, "platform-key", "set", "--tenant", tenant, stdin="")
    assert empty.returncode == 2 and "stdin" in empty.stderr


def test_kill_switch_through_the_cli(topology: Topology) -> None:
    try:
        assert ok(cli(topology, "kill-switch", "on", "--reason", "cli drill", "--json"))["kill_switch"] == "on"
        refused = cli(topology, "kill-switch", "on")
        assert refused.returncode == 2 and "--reason" in refused.stderr
    finally:
        assert ok(cli(topology, "kill-switch", "off", "--json"))["kill_switch"] == "off"


def test_refusals(topology: Topology) -> None:
    unknown = cli(topology, "keys", "issue", "--tenant", str(uuid.uuid4()))
    assert unknown.returncode == 1 and "no tenant" in unknown.stderr
    assert topology.dsns is not None
    as_runtime = cli(topology, "list", env={"OPS_ADMIN_DATABASE_URL": topology.dsns.runtime_sync})
    assert as_runtime.returncode == 2 and "must name ops_admin, not app_user" in as_runtime.stderr
    no_dsn = cli(topology, "list", env={"OPS_ADMIN_DATABASE_URL": ""})
    assert no_dsn.returncode == 2 and "OPS_ADMIN_DATABASE_URL" in no_dsn.stderr
    bad_month = cli(topology, "budget", "set", "--tenant", str(uuid.uuid4()), "--user", "u", "--month", "2026-13",
                    "--limit-cents", "1")  # fmt: skip
    assert bad_month.returncode == 2


def test_secrets_are_printed_once_on_stdout_only(topology: Topology) -> None:
    made = cli(topology, "create", "--name", "cli-once", "--json")
    secrets = [ok(made)["api_key"], ok(made)["webhook_secret"]]
    assert all(made.stdout.count(secret) == 1 for secret in secrets)
    assert not any(secret in made.stderr for secret in secrets)
    listing = cli(topology, "list", "--json")
    assert not any(secret in listing.stdout for secret in secrets)
