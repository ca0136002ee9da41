"""Credentials sealed at rest (migration 0018): webhook signing secrets and platform API keys.

A dump (everything the superuser reads) holds no credential in plain text; ops_reader and app_ro may
not select the sealed columns at all, and what a reader given that right would see does not open
without the key ring; a ciphertext copied from another tenant's row does not open (the tenant is
bound into it), so the webhook is refused and the reconciliation fails, neither with a 500.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from app.core.db import tenant_transaction_sync
from app.core.roles import OPS_READER_ROLE, READ_ONLY_GROUP, RUNTIME_ROLE
from app.core.sealing import KeyRing, SealingError, key_ring, new_key_ring
from app.reconciliation.runs import KEY_DOES_NOT_OPEN
from app.tenants.credentials import PLATFORM_API_KEYS, SEALED_COLUMNS, WEBHOOK_SECRETS, SealedColumn
from app.tenants.service import ProvisionedTenant, create_tenant, rotate_webhook_secret
from scripts.harness import sync_dsn
from scripts.topology import Topology

from ..conftest import disposed_after, stored_text
from .conftest import superuser_dsn
from .test_b07_p8_topology_closure_pack import NOW, connect_platform, platform_txn, run_reconciliation, touch
from .test_webhook_bad_input import assert_problem
from .webhook_client import post_webhook

READERS = (OPS_READER_ROLE, READ_ONLY_GROUP)
COLUMNS = pytest.mark.parametrize("sealed", SEALED_COLUMNS, ids=[c.table for c in SEALED_COLUMNS])


@dataclass
class Merchant:
    tenant: ProvisionedTenant
    rotated_secret: str = field(repr=False)
    platform_key: str = field(repr=False)

    def plaintexts(self, sealed: SealedColumn) -> set[str]:
        if sealed == WEBHOOK_SECRETS:
            return {self.tenant.webhook_secret, self.rotated_secret}
        return {self.platform_key}

    def found_in(self, haystack: str) -> list[str]:
        """Which credentials ``haystack`` holds, by name (a failing test report must not show them);
        a webhook secret also by its key alone, without the whsec_ prefix."""
        named = {"secret": self.tenant.webhook_secret, "rotated": self.rotated_secret, "api key": self.platform_key}
        named |= {f"{name} w/o prefix": value.removeprefix("whsec_") for name, value in named.items()}
        return [name for name, value in named.items() if value in haystack]

    def opens_as_stored(self, values: set[str], sealed: SealedColumn, ring: KeyRing) -> bool:
        return {ring.open(v, self.tenant.tenant_id, sealed.purpose) for v in values} == self.plaintexts(sealed)


@pytest.fixture(scope="module")
def payments(topology: Topology) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=topology.mock_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def merchant(topology: Topology, runtime_engine: Engine, payments: httpx.Client) -> Merchant:
    """A tenant with a rotated webhook secret (both in force) and a platform key saved through the api."""
    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, "sealed-merchant")
    with runtime_engine.begin() as conn:
        rotated = rotate_webhook_secret(conn, tenant.context, grace_s=3600)
    with httpx.Client(base_url=topology.api_url, timeout=15) as api:
        connect_platform(api, payments, tenant, [platform_txn("ch_sealed", 1_000, NOW)])
    return Merchant(tenant, rotated, f"sk_test_{tenant.tenant_id.hex}")


@pytest.fixture(scope="module")
def superuser(topology: Topology) -> Iterator[Engine]:
    yield from disposed_after(superuser_dsn(topology))


def sealed_of(runtime_engine: Engine, tenant: ProvisionedTenant, sealed: SealedColumn) -> set[str]:
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        return set(conn.execute(text(f"SELECT {sealed.column} FROM {sealed.table}")).scalars())


@COLUMNS
def test_the_database_holds_sealed_values_that_open_with_the_ring(
    runtime_engine: Engine, merchant: Merchant, sealed: SealedColumn
) -> None:
    ring = key_ring()
    values = sealed_of(runtime_engine, merchant.tenant, sealed)
    assert merchant.opens_as_stored(values, sealed, ring)
    assert {ring.key_id_of(v) for v in values} == {ring.current}


def test_a_dump_of_every_text_column_holds_no_credential(
    superuser: Engine, runtime_engine: Engine, merchant: Merchant
) -> None:
    scanned = set(stored_text(superuser))
    assert [(where, merchant.found_in(value)) for where, value in scanned if merchant.found_in(value)] == []
    for sealed in SEALED_COLUMNS:  # the scan read the sealed columns, and found this tenant's values
        where = f"{sealed.table}.{sealed.column}"
        assert {(where, v) for v in sealed_of(runtime_engine, merchant.tenant, sealed)} <= scanned


def test_pg_dump_holds_no_credential(topology: Topology, runtime_engine: Engine, merchant: Merchant) -> None:
    if topology.embedded is None or topology.embedded.bin_path is None:
        pytest.skip("pg_dump comes with the embedded server only")
    dump = subprocess.run(
        [str(topology.embedded.bin_path / "pg_dump"), "--dbname", sync_dsn(superuser_dsn(topology))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert merchant.found_in(dump) == []
    assert all(v in dump for v in sealed_of(runtime_engine, merchant.tenant, WEBHOOK_SECRETS))


@COLUMNS
def test_the_database_refuses_a_credential_in_plain_text(
    runtime_engine: Engine, merchant: Merchant, sealed: SealedColumn
) -> None:
    """A code path that forgot to seal fails loudly instead of storing the plaintext."""
    update = text(f"UPDATE {sealed.table} SET {sealed.column} = :new WHERE {sealed.column} = :old")
    [value, *_] = sealed_of(runtime_engine, merchant.tenant, sealed)
    with tenant_transaction_sync(merchant.tenant.context, runtime_engine) as conn:
        assert conn.execute(update, {"new": value, "old": value}).rowcount == 1  # control: sealed is accepted
    with pytest.raises(IntegrityError, match="_format"):  # noqa: SIM117
        with tenant_transaction_sync(merchant.tenant.context, runtime_engine) as conn:
            conn.execute(update, {"new": sorted(merchant.plaintexts(sealed))[0], "old": value})


@contextmanager
def session_as(topology: Topology, reader: str) -> Iterator[psycopg.Connection]:
    """ops_reader logs in; app_ro logs in as nobody, so the superuser becomes it."""
    assert topology.dsns is not None
    dsn = sync_dsn(topology.dsns.ops) if reader == OPS_READER_ROLE else superuser_dsn(topology)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if reader != OPS_READER_ROLE:
            conn.execute(f"SET ROLE {reader}")
        yield conn


def other_columns(superuser: Engine, sealed: SealedColumn) -> list[str]:
    with superuser.connect() as conn:
        columns = conn.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 "
                "AND NOT attisdropped AND attname <> :sealed"
            ),
            {"t": sealed.table, "sealed": sealed.column},
        ).scalars()
        return list(columns)


@COLUMNS
@pytest.mark.parametrize("reader", READERS)
def test_readers_may_not_select_the_sealed_column(
    topology: Topology, superuser: Engine, merchant: Merchant, sealed: SealedColumn, reader: str
) -> None:
    with session_as(topology, reader) as conn:
        for query in (f"SELECT {sealed.column} FROM {sealed.table}", f"SELECT * FROM {sealed.table}"):
            with pytest.raises(
                psycopg.errors.InsufficientPrivilege, match=f"permission denied for table {sealed.table}"
            ):
                conn.execute(query)
        mine = conn.execute(
            f"SELECT {', '.join(other_columns(superuser, sealed))} FROM {sealed.table} WHERE tenant_id = %s",
            (merchant.tenant.tenant_id,),
        ).fetchall()
    # ops_reader bypasses row-level security and counts the merchant's rows; app_ro sees none
    assert len(mine) == (len(merchant.plaintexts(sealed)) if reader == OPS_READER_ROLE else 0)
    with superuser.connect() as conn:
        may = text("SELECT has_column_privilege(:role, :table, :column, 'SELECT')")
        params = {"table": sealed.table, "column": sealed.column}
        assert conn.execute(may, {**params, "role": reader}).scalar_one() is False
        assert conn.execute(may, {**params, "role": RUNTIME_ROLE}).scalar_one() is True


@COLUMNS
def test_control_a_reader_given_the_column_sees_ciphertext_useless_without_the_key(
    topology: Topology, owner_engine: Engine, runtime_engine: Engine, merchant: Merchant, sealed: SealedColumn
) -> None:
    """The refusal above is this one missing grant; with it, ops_reader reads values that open only
    with the ring, and not with another key of the same id."""
    grant = f"GRANT SELECT ({sealed.column}) ON {sealed.table} TO {OPS_READER_ROLE}"
    with owner_engine.begin() as conn:
        conn.execute(text(grant))
    try:
        with session_as(topology, OPS_READER_ROLE) as conn:
            query = f"SELECT {sealed.column} FROM {sealed.table} WHERE tenant_id = %s"
            seen = {row[0] for row in conn.execute(query, (merchant.tenant.tenant_id,))}
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text(grant.replace("GRANT", "REVOKE").replace(" TO ", " FROM ")))
    assert seen == sealed_of(runtime_engine, merchant.tenant, sealed)
    assert [merchant.found_in(v) for v in seen] == [[] for _ in seen]
    ring = key_ring()
    stranger = KeyRing.parse(new_key_ring(ring.current))
    assert merchant.opens_as_stored(seen, sealed, ring)
    for value in seen:
        with pytest.raises(SealingError):
            stranger.open(value, merchant.tenant.tenant_id, sealed.purpose)


def copy_sealed(
    runtime_engine: Engine, sealed: SealedColumn, source: ProvisionedTenant, target: ProvisionedTenant
) -> str:
    """What an attacker with write access to the table (not to the key ring) could do."""
    [value] = sealed_of(runtime_engine, source, sealed)
    with tenant_transaction_sync(target.context, runtime_engine) as conn:
        conn.execute(text(f"UPDATE {sealed.table} SET {sealed.column} = :v"), {"v": value})
    return value


def tenants(runtime_engine: Engine, *names: str) -> list[ProvisionedTenant]:
    with runtime_engine.begin() as conn:
        return [create_tenant(conn, f"{name}-{uuid.uuid4().hex[:6]}") for name in names]


def test_another_tenants_secret_copied_into_a_row_does_not_open(
    topology: Topology, api: httpx.Client, runtime_engine: Engine
) -> None:
    a, b = tenants(runtime_engine, "victim", "source")
    assert post_webhook(api, "touchpoints", a, touch("tp-a0", "c1", "email", NOW)).status_code == 202  # control
    log = topology.processes["api"].log_path
    logged_before = log.stat().st_size
    copied = copy_sealed(runtime_engine, WEBHOOK_SECRETS, b, a)
    for n in range(3):
        signed_by_b = post_webhook(
            api, "touchpoints", a, touch(f"tp-a{n + 1}", "c1", "email", NOW), secret=b.webhook_secret
        )
        assert_problem(signed_by_b, 401, "signature_mismatch")
    assert_problem(post_webhook(api, "touchpoints", a, touch("tp-a9", "c1", "email", NOW)), 401, "signature_mismatch")
    assert post_webhook(api, "touchpoints", b, touch("tp-b0", "c1", "email", NOW)).status_code == 202  # opens for B
    with log.open("rb") as handle:
        handle.seek(logged_before)
        written = handle.read().decode(errors="replace")
    reports = [line for line in written.splitlines() if "treated as absent" in line and str(a.tenant_id) in line]
    assert 1 <= len(reports) <= topology.config.api_processes  # once per process, not once per webhook
    assert b.webhook_secret not in written and copied.rsplit(":", 1)[1] not in written


def test_another_tenants_platform_key_copied_into_a_row_does_not_open(
    api: httpx.Client, payments: httpx.Client, runtime_engine: Engine
) -> None:
    c, d = tenants(runtime_engine, "victim-merchant", "source-merchant")
    for tenant in (c, d):
        connect_platform(api, payments, tenant, [platform_txn(f"ch_{tenant.tenant_id.hex[:8]}", 500, NOW)])
    copy_sealed(runtime_engine, PLATFORM_API_KEYS, d, c)
    run = run_reconciliation(api, c)
    assert run["status"] == "failed" and run["failure_reason"] == KEY_DOES_NOT_OPEN
    assert run_reconciliation(api, d)["status"] == "succeeded"  # the very same ciphertext opens for its tenant
