"""Pure helpers of the harness and the security module."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
from pathlib import Path

import pytest

from app.core.security import hash_api_key, new_api_key, parse_bearer
from scripts.harness import redact_dsn, sync_dsn
from scripts.topology.postgres import scram_verifier
from scripts.topology.processes import free_port


@pytest.mark.parametrize(
    ("raw", "redacted"),
    [
        (
            "postgresql+asyncpg://app_user:s3cr3t@/db?host=/tmp",
            "postgresql+asyncpg://app_user:***@/db?host=/tmp",
        ),
        ("x sqla+postgresql://u:p@h:5432/d y", "x sqla+postgresql://u:***@h:5432/d y"),
        ("postgresql://postgres@/postgres", "postgresql://postgres@/postgres"),
    ],
)
def test_redact_dsn(raw: str, redacted: str) -> None:
    assert redact_dsn(raw) == redacted


def test_sync_dsn_strips_drivers() -> None:
    assert sync_dsn("db+postgresql://u:p@h/d") == "postgresql://u:p@h/d"
    assert sync_dsn("postgresql+asyncpg://u:p@h/d") == "postgresql://u:p@h/d"


def test_scram_verifier_matches_rfc_7677_derivation() -> None:
    verifier = scram_verifier("pencil")
    scheme, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt_b64 = iterations_salt.split(":")
    stored_b64, server_b64 = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", base64.b64decode(salt_b64), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    assert scheme == "SCRAM-SHA-256" and iterations == "4096"
    assert base64.b64decode(stored_b64) == hashlib.sha256(client_key).digest()
    assert base64.b64decode(server_b64) == hmac.new(salted, b"Server Key", "sha256").digest()
    assert "pencil" not in verifier


def test_taken_port_is_replaced_by_a_free_one() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        chosen = free_port(taken)
    assert chosen != taken and chosen > 0


def test_api_keys_are_random_and_hashed() -> None:
    key = new_api_key()
    assert key != new_api_key() and len(key) > 40
    assert hash_api_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert parse_bearer(f"Bearer {key}") == key
    assert parse_bearer(f"bearer  {key}") == key
    assert parse_bearer(key) is None
    assert parse_bearer("Bearer not-our-format") is None
    assert parse_bearer(None) is None


def test_provisioned_tenant_repr_hides_its_secrets() -> None:
    import uuid

    from app.tenants.service import ProvisionedTenant

    tenant = ProvisionedTenant(uuid.uuid4(), "owner", new_api_key(), "whsec_c2VjcmV0c2VjcmV0")
    shown = repr(tenant)
    assert tenant.api_key not in shown and tenant.webhook_secret not in shown and "owner" in shown


def test_emit_tolerates_a_reader_that_stops_early() -> None:
    """`script | grep -q x` under pipefail must not turn into a BrokenPipe traceback and exit 1."""
    import subprocess
    import sys

    from scripts.harness import REPO_ROOT

    code = "from scripts.harness import emit; emit({'k': 'v' * 200000})"
    result = subprocess.run(
        ["bash", "-c", f'set -o pipefail; {sys.executable} -c "{code}" | head -c 10 >/dev/null'],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "BrokenPipeError" not in result.stderr


def test_superuser_url_names_the_run_database_and_refuses_without_one(tmp_path: Path) -> None:
    from scripts.topology import Topology, TopologyConfig, TopologyError

    topology = Topology(TopologyConfig(artifact_dir=tmp_path))
    with pytest.raises(TopologyError, match="no superuser URL"):
        topology.superuser_url()
    topology.admin_url = "postgresql://postgres:pw@127.0.0.1:5432/postgres"
    topology.database = "attribution_abc"
    assert topology.superuser_url() == "postgresql://postgres:pw@127.0.0.1:5432/attribution_abc"
    assert topology.superuser_url("template1").endswith("/template1")
