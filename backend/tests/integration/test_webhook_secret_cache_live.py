"""The intake's webhook-secret cache against the live topology (app.webhooks.secret_cache, migration
0031): a secret revoked or ending its grace while cached is refused at once, and a lost LISTEN
connection stops the cache from answering. The controls change secrets without the trigger firing
(``session_replication_role = replica``, the superuser's), which shows the answers really come from
the cache: such a change goes unseen until something says the tenant changed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from sqlalchemy import Engine

from app.tenants.service import ProvisionedTenant, create_tenant, rotate_webhook_secret
from app.webhooks.secret_cache import CHANNEL, LISTENER_NAME
from scripts.topology import Topology

from .conftest import superuser_dsn
from .webhook_client import post_webhook, touchpoint

pytestmark = pytest.mark.slow


def status(api: httpx.Client, tenant: ProvisionedTenant) -> int:
    return post_webhook(api, "touchpoints", tenant, touchpoint()).status_code


@pytest.fixture
def tenant(runtime_engine: Engine, api: httpx.Client) -> ProvisionedTenant:
    """A tenant whose secret the api has just read, and so cached."""
    with runtime_engine.begin() as conn:
        made = create_tenant(conn, f"secret-cache-{uuid.uuid4().hex[:6]}")
    assert [status(api, made) for _ in range(2)] == [202, 202]
    return made


@pytest.fixture
def superuser(topology: Topology) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(superuser_dsn(topology), autocommit=True) as conn:
        yield conn


def revoke_unannounced(superuser: psycopg.Connection[tuple[object, ...]], tenant: ProvisionedTenant) -> None:
    """End the tenant's secrets with the trigger off for this session: no notification is sent."""
    with superuser.transaction():
        superuser.execute("SET LOCAL session_replication_role = replica")
        superuser.execute("UPDATE webhook_secrets SET expires_at = now() WHERE tenant_id = %s", (tenant.tenant_id,))


def test_a_secret_revoked_while_cached_is_refused_at_once(
    runtime_engine: Engine, api: httpx.Client, tenant: ProvisionedTenant
) -> None:
    for _ in range(5):  # each round revokes a cached secret and asks at once
        with runtime_engine.begin() as conn:
            new = rotate_webhook_secret(conn, tenant.context, grace_s=0)
        assert status(api, tenant) == 401
        tenant = ProvisionedTenant(tenant.tenant_id, tenant.user_id, tenant.api_key, new)
        assert status(api, tenant) == 202


def test_a_cached_secret_ends_with_its_grace(
    runtime_engine: Engine,
    api: httpx.Client,
    tenant: ProvisionedTenant,
    superuser: psycopg.Connection[tuple[object, ...]],
) -> None:
    """The cache, not the database, ends it: after the secret is cached with its 2 s, the database is
    made to say it never ends (unannounced), so only the cache's own countdown can refuse it."""
    with runtime_engine.begin() as conn:
        rotate_webhook_secret(conn, tenant.context, grace_s=2)
    started = time.monotonic()
    assert status(api, tenant) == 202  # read with its 2 s left, and cached
    with superuser.transaction():
        superuser.execute("SET LOCAL session_replication_role = replica")
        superuser.execute("UPDATE webhook_secrets SET expires_at = NULL WHERE tenant_id = %s", (tenant.tenant_id,))
    assert status(api, tenant) == 202
    time.sleep(max(0.0, started + 2.5 - time.monotonic()))
    assert status(api, tenant) == 401


def test_control_an_unannounced_change_goes_unseen_until_notified(
    api: httpx.Client, tenant: ProvisionedTenant, superuser: psycopg.Connection[tuple[object, ...]]
) -> None:
    revoke_unannounced(superuser, tenant)
    assert status(api, tenant) == 202  # the cached secret: the cache is what answered
    superuser.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(tenant.tenant_id)))
    time.sleep(0.2)
    assert status(api, tenant) == 401


def test_a_lost_listener_stops_the_cache_answering(
    api: httpx.Client, tenant: ProvisionedTenant, superuser: psycopg.Connection[tuple[object, ...]]
) -> None:
    ended = superuser.execute(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (LISTENER_NAME,)
    ).fetchall()
    assert ended, "the api must be listening"
    deadline = time.monotonic() + 10
    while superuser.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (ended[0][0],)).fetchone():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    revoke_unannounced(superuser, tenant)
    time.sleep(0.2)
    assert status(api, tenant) == 401  # the cache emptied when its connection went, not on a notification
