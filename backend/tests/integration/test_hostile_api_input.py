"""Hostile requests against every tenant-facing GET of the committed contract.

- Id guessing: another tenant's real ids, random UUIDs and sequential-looking ids are all 404,
  never the other tenant's data.
- Injection and header tricks in every path and query parameter: a clear 4xx, never a 500 and
  never a 200 that leaks rows.
- Deeply nested JSON and a slow body on the webhook intake: a bounded 4xx.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.harness import BACKEND_DIR
from scripts.topology import Topology

from .webhook_client import bearer, run_llm_task, signed_headers

pytestmark = pytest.mark.slow

CONTRACT = yaml.safe_load((BACKEND_DIR / "contracts" / "openapi.yaml").read_text())
ID_ROUTES = sorted(
    path for path, item in CONTRACT["paths"].items() if "get" in item and "{" in path and path.startswith("/api/")
)
QUERY_ROUTES = {
    path: [p["name"] for p in item["get"].get("parameters", []) if p["in"] == "query"]
    for path, item in CONTRACT["paths"].items()
    if "get" in item and path.startswith("/api/")
}
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "instance"}
HOSTILE_VALUES = [
    "1' OR '1'='1",
    "1; DROP TABLE tenants; --",
    "../../../etc/passwd",
    "%00",
    "\u202e00000000",
    "0" * 5000,
    "00000000-0000-0000-0000-000000000000' UNION SELECT * FROM api_keys --",
    "${jndi:ldap://x}",
    "-1",
    "9223372036854775808",
]


@pytest.fixture(scope="module")
def api(topology: Topology) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=topology.api_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def owner_and_guesser(runtime_engine: Engine) -> tuple[ProvisionedTenant, ProvisionedTenant]:
    with runtime_engine.begin() as conn:
        owner = create_tenant(conn, "hostile-owner", user_id="analyst")
    with runtime_engine.begin() as conn:
        guesser = create_tenant(conn, "hostile-guesser", user_id="analyst")
    return owner, guesser


@pytest.fixture(scope="module")
def owned_ids(api: httpx.Client, owner_and_guesser: tuple[ProvisionedTenant, ProvisionedTenant]) -> dict[str, str]:
    """One real id of the owner for every id route of the contract."""
    owner, _ = owner_and_guesser
    job = api.post("/api/v1/attribution/jobs", headers=bearer(owner), json={"model": "last_touch"}).json()
    investigation = run_llm_task(api, owner, "investigation", f"hostile-{uuid.uuid4().hex}", "why?")
    optimization = run_llm_task(api, owner, "budget_optimization", f"hostile-{uuid.uuid4().hex}", "how?")
    window = {"platform": "stripe", "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-02T00:00:00Z"}
    run = api.post("/api/v1/reconciliation/runs", headers=bearer(owner), json=window)
    ids = {
        "/api/v1/attribution/jobs/{job_id}": job["job_id"],
        "/api/v1/llm/jobs/{job_id}": investigation["job_id"],
        "/api/v1/investigations/{investigation_id}": investigation["result"]["investigation_id"],
        "/api/v1/budget-optimizations/{optimization_id}": optimization["result"]["budget_optimization_id"],
        "/api/v1/reconciliation/runs/{run_id}": run.json().get("run_id", str(uuid.uuid4())),
    }
    assert sorted(ids) == ID_ROUTES, "a new id route needs an owned id here"
    return ids


def fill(route: str, value: str) -> str:
    return route.split("{")[0] + httpx.URL(f"/{value}").raw_path.decode().lstrip("/")


def test_another_tenants_ids_are_not_found(
    api: httpx.Client, owner_and_guesser: tuple[ProvisionedTenant, ProvisionedTenant], owned_ids: dict[str, str]
) -> None:
    owner, guesser = owner_and_guesser
    for route, owned in owned_ids.items():
        assert api.get(fill(route, owned), headers=bearer(owner)).status_code == 200, route  # control: it exists
        guessed = api.get(fill(route, owned), headers=bearer(guesser))
        assert guessed.status_code == 404, (route, guessed.text)
        assert set(guessed.json()) <= PROBLEM_FIELDS  # a problem document, nothing of the owner's row
        for guess in [str(uuid.uuid4()) for _ in range(20)] + [str(uuid.UUID(int=n)) for n in range(20)]:
            assert api.get(fill(route, guess), headers=bearer(guesser)).status_code == 404, (route, guess)


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_path_and_query_values_get_a_clear_4xx(
    api: httpx.Client, owner_and_guesser: tuple[ProvisionedTenant, ProvisionedTenant], value: str
) -> None:
    owner, _ = owner_and_guesser
    for route in ID_ROUTES:
        response = api.get(fill(route, value), headers=bearer(owner))
        assert response.status_code in (404, 422), (route, value, response.status_code, response.text[:200])
        assert response.headers["content-type"].startswith("application/problem+json")
    for route, names in QUERY_ROUTES.items():
        if "{" in route:
            continue
        for name in [*names, "unexpected"]:
            response = api.get(route, params={name: value}, headers=bearer(owner))
            assert response.status_code in (200, 422), (route, name, value, response.status_code)
            if response.status_code == 200:  # ignored safely only where the parameter is not ours
                assert name not in names or route == "/api/v1/me", (route, name)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer ' OR 1=1 --",
        "Bearer " + "a" * 10_000,
        "Basic YWRtaW46YWRtaW4=",
        "Bearer",
        "bearer  ak_x",
        "Bearer ak_" + "x" * 43,
    ],
)
def test_header_tricks_are_401(api: httpx.Client, authorization: str) -> None:
    response = api.get("/api/v1/me", headers={"Authorization": authorization, "x-tenant-id": str(uuid.uuid4())})
    assert response.status_code == 401, response.text


def test_deeply_nested_json_is_a_bounded_4xx(
    api: httpx.Client, owner_and_guesser: tuple[ProvisionedTenant, ProvisionedTenant]
) -> None:
    owner, _ = owner_and_guesser
    for depth in (100, 10_000, 200_000):
        body = ("[" * depth + "]" * depth).encode()
        if len(body) > 256_000:
            body = body[:256_000]
        response = api.post("/webhooks/touchpoints", content=body, headers=signed_headers(owner, body))
        assert response.status_code in (400, 413, 422), (depth, response.status_code)
    body = ('{"event_id":"deep","extra":' + '{"a":' * 40_000 + '"leaf"' + "}" * 40_001).encode()
    response = api.post("/webhooks/touchpoints", content=body, headers=signed_headers(owner, body))
    assert response.status_code in (400, 413, 422)


def test_a_slow_body_is_cut_off_with_408(topology: Topology, owner_and_guesser: tuple[ProvisionedTenant, ...]) -> None:
    """A client that trickles its body holds a connection; the intake stops waiting and says so."""
    owner = owner_and_guesser[0]
    body = json.dumps(
        {"event_id": "slow", "customer_id": "c", "channel": "email", "occurred_at": "2026-01-01T00:00:00Z"}
    ).encode()
    headers = signed_headers(owner, body)
    port = int(topology.api_url.rsplit(":", 1)[1])
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"POST /webhooks/touchpoints HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n{head}\r\n".encode()

    async def trickle() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request + body[:5])
        await writer.drain()
        started = time.monotonic()
        # The server closes after answering; headers and body may arrive in separate segments.
        answer = await asyncio.wait_for(reader.read(), timeout=60)
        writer.close()
        assert time.monotonic() - started < 30
        return answer

    answer = asyncio.run(trickle())
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"body_timeout" in answer
