"""The api over real HTTP: authentication to a tenant, problem details, health bodies."""

from __future__ import annotations

import httpx
import pytest

from .conftest import TwoTenants


def test_live_and_ready(api: httpx.Client) -> None:
    assert api.get("/health/live").json() == {"status": "live"}
    body = api.get("/health/ready").json()
    assert body["status"] == "ready", body
    assert set(body["checks"]) == {"database", "migrations", "rls_forced", "tenant_guc", "outbox"}
    assert body["checks"]["database"]["user"] == "app_user"
    assert body["checks"]["rls_forced"]["tenant_tables"] >= 3


def test_worker_probe_goes_through_the_broker(api: httpx.Client) -> None:
    response = api.get("/health/worker", params={"fresh": "true"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cached"] is False
    assert body["checks"]["worker"]["round_trip_ms"] > 0
    assert api.get("/health/worker").json()["cached"] is True  # within the cache window


def test_each_key_resolves_to_its_own_tenant(api: httpx.Client, two_tenants: TwoTenants) -> None:
    for _ in range(5):  # alternate, so pooled connections serve both tenants in turn
        for tenant in (two_tenants.a, two_tenants.b):
            response = api.get("/api/v1/me", headers={"Authorization": f"Bearer {tenant.api_key}"})
            assert response.status_code == 200, response.text
            assert response.json()["tenant_id"] == str(tenant.tenant_id)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "auth_missing"),
        ("Basic dXNlcjpwdw==", "auth_missing"),
        ("Bearer ak_unknown-key-that-was-never-issued", "auth_invalid"),
        ("Bearer ak_' OR '1'='1", "auth_invalid"),
    ],
)
def test_bad_credentials_get_problem_details(api: httpx.Client, header: str | None, code: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = api.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and body["status"] == 401 and body["detail"]


def test_unknown_path_is_a_problem_document(api: httpx.Client) -> None:
    response = api.get("/no/such/path")
    assert response.status_code == 404
    assert response.json()["code"] == "http_404"
