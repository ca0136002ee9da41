"""The Phase 8 closure pack against the live topology.

EG8.2 event attribution: signed webhook -> persistence -> scheduled recompute on the real worker ->
attributed revenue queryable through the API, with exact figures. EG8.2 revenue verification:
reconciliation against the mock payment platform -> queryable reconciliation API. EG8.6: live
responses validate against the committed contract, and mutated ones do not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.contract import ContractValidator

from .webhook_client import bearer, eventually, post_webhook

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def iso(at: datetime) -> str:
    return at.isoformat()


def touch(event_id: str, customer: str, channel: str, at: datetime) -> dict[str, Any]:
    return {"event_id": event_id, "customer_id": customer, "channel": channel, "occurred_at": iso(at)}


def stripe_charge(event_id: str, customer: str, cents: int, at: datetime) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "charge.succeeded",
        "created": int(at.timestamp()),
        "data": {"object": {"id": f"ch_{event_id}", "amount": cents, "currency": "usd", "customer": customer}},
    }


def shopify_order(order_id: int, customer: int | None, total: str, at: datetime) -> dict[str, Any]:
    order: dict[str, Any] = {"id": order_id, "total_price": total, "currency": "USD", "created_at": iso(at)}
    if customer is not None:
        order["customer"] = {"id": customer}
    return order


# (platform, payload). Expected last-touch credit is worked out by hand in EXPECTED below.
STORY = [
    ("touchpoints", touch("tp-1", "cus_1", "google_ads", NOW - timedelta(days=3))),
    ("touchpoints", touch("tp-2", "cus_1", "facebook", NOW - timedelta(days=1))),  # latest for cus_1
    ("touchpoints", touch("tp-3", "9001", "email", NOW - timedelta(days=2))),
    (
        "touchpoints",
        touch("tp-4", "cus_3", "google_ads", NOW - timedelta(days=40)),
    ),  # outside 30-day lookback
    (
        "touchpoints",
        touch("tp-b", "cus_5", "tiktok", NOW - timedelta(hours=5)),
    ),  # tie on time: larger id wins
    ("touchpoints", touch("tp-a", "cus_5", "bing", NOW - timedelta(hours=5))),
    ("touchpoints", touch("tp-6", "cus_1", "newsletter", NOW + timedelta(minutes=5))),  # after the conversion
    ("stripe", stripe_charge("evt_1", "cus_1", 10_000, NOW)),
    ("shopify", shopify_order(5001, 9001, "25.50", NOW)),
    ("stripe", stripe_charge("evt_3", "cus_3", 500, NOW)),
    ("shopify", shopify_order(5002, None, "10.00", NOW)),  # no customer: unattributed
    ("stripe", stripe_charge("evt_5", "cus_5", 700, NOW)),
]
EXPECTED = {
    "facebook": (10_000, 1),
    "email": (2_550, 1),
    "tiktok": (700, 1),
    "unattributed": (1_500, 2),
}


@pytest.fixture(scope="module")
def shop(runtime_engine: Engine) -> tuple[ProvisionedTenant, ProvisionedTenant]:
    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, "closure-shop")
    with runtime_engine.begin() as conn:
        other = create_tenant(conn, "closure-other")
    return tenant, other


def results(api: httpx.Client, tenant: ProvisionedTenant, **params: str) -> dict[str, Any]:
    response = api.get("/api/v1/attribution/results", headers=bearer(tenant), params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_webhooks_flow_to_attributed_revenue(
    api: httpx.Client, runtime_engine: Engine, shop: tuple[ProvisionedTenant, ProvisionedTenant]
) -> None:
    tenant, other = shop
    for platform, payload in STORY:
        response = post_webhook(api, platform, tenant, payload)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "accepted"

    # Persisted under the right tenant, invisible to another.
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM attribution_events")).scalar_one() == len(STORY)
        assert conn.execute(text("SELECT count(*) FROM outbox")).scalar_one() == len(STORY)
    with tenant_transaction_sync(other.context, runtime_engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM attribution_events")).scalar_one() == 0

    # The recompute was scheduled through the broker and executed by the worker.
    def outbox_done() -> bool:
        with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
            return conn.execute(text("SELECT count(*) FROM outbox WHERE completed_at IS NULL")).scalar_one() == 0

    eventually(outbox_done, timeout_s=30)
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        dispatches = conn.execute(text("SELECT count(DISTINCT dispatched_at) FROM outbox")).scalar_one()
    assert dispatches <= len(STORY)  # bursts coalesce: never more messages than events

    body = results(api, tenant)
    assert body["served_model"] == "last_touch"
    assert {c["channel"]: (c["revenue_cents"], c["conversions"]) for c in body["channels"]} == EXPECTED
    assert body["total_revenue_cents"] == 14_750
    assert results(api, other)["channels"] == []  # the other tenant's API view is empty


def test_results_window_filters_by_day(api: httpx.Client, shop: tuple[ProvisionedTenant, ProvisionedTenant]) -> None:
    tenant, _ = shop
    before = (NOW - timedelta(days=10)).date()
    assert results(api, tenant, start=str(before), end=str(before))["channels"] == []
    bad = api.get(
        "/api/v1/attribution/results",
        headers=bearer(tenant),
        params={"start": "2026-02-01", "end": "2026-01-01"},
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_window"


def test_last_touch_job_through_the_api(api: httpx.Client, shop: tuple[ProvisionedTenant, ProvisionedTenant]) -> None:
    tenant, other = shop
    created = api.post("/api/v1/attribution/jobs", headers=bearer(tenant), json={"model": "last_touch"})
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]

    def finished() -> dict[str, Any] | None:
        job = api.get(f"/api/v1/attribution/jobs/{job_id}", headers=bearer(tenant)).json()
        return job if job["status"] in ("succeeded", "failed", "timed_out") else None

    job = eventually(finished, timeout_s=30)
    assert job["status"] == "succeeded" and job["result"]["rows"] == len(EXPECTED)
    assert api.get(f"/api/v1/attribution/jobs/{job_id}", headers=bearer(other)).status_code == 404


# ---- Revenue verification topology: reconciliation write -> queryable reconciliation API -------------------------

WINDOW_START = NOW - timedelta(days=2)
WINDOW_END = NOW + timedelta(days=1)
LEDGER = {"ch_a": 1_000, "ch_b": 2_000, "ch_c": 3_000, "ch_d": 4_000}  # sent as stripe webhooks
PLATFORM = {"ch_a": 1_000, "ch_b": 2_000, "ch_c": 3_100, "ch_e": 500}  # the payment platform's record
EXPECTED_ITEMS = {
    "ch_a": ("matched", 1_000, 1_000),
    "ch_b": ("matched", 2_000, 2_000),
    "ch_c": ("amount_mismatch", 3_000, 3_100),
    "ch_d": ("missing_on_platform", 4_000, None),
    "ch_e": ("missing_in_ledger", None, 500),
}


def connect_platform(
    api: httpx.Client, mock: httpx.Client, tenant: ProvisionedTenant, transactions: list[dict]
) -> None:
    key = f"sk_test_{tenant.tenant_id.hex}"
    assert (
        mock.put(
            f"/control/accounts/{tenant.tenant_id}", json={"api_key": key, "transactions": transactions}
        ).status_code
        == 200
    )
    saved = api.put("/api/v1/platform-connections/stripe", headers=bearer(tenant), json={"api_key": key})
    assert saved.status_code == 200, saved.text


def platform_txn(source: str, cents: int, at: datetime) -> dict[str, Any]:
    return {"id": f"txn_{source}", "source": source, "amount": cents, "created": int(at.timestamp())}


def run_reconciliation(api: httpx.Client, tenant: ProvisionedTenant, timeout_s: float = 60) -> dict[str, Any]:
    window = {"platform": "stripe", "window_start": iso(WINDOW_START), "window_end": iso(WINDOW_END)}
    created = api.post("/api/v1/reconciliation/runs", headers=bearer(tenant), json=window)
    assert created.status_code == 202, created.text
    run_id = created.json()["run_id"]

    def finished() -> dict[str, Any] | None:
        run = api.get(f"/api/v1/reconciliation/runs/{run_id}", headers=bearer(tenant)).json()
        return run if run["status"] in ("succeeded", "failed") else None

    return eventually(finished, timeout_s=timeout_s, interval_s=0.2)


@pytest.fixture(scope="module")
def mock(topology: Any) -> Any:
    with httpx.Client(base_url=topology.mock_url, timeout=10) as client:
        yield client
        client.post("/control/faults", json={"mode": "success"})


@pytest.fixture(scope="module")
def merchant(api_module: httpx.Client, mock: httpx.Client, runtime_engine: Engine) -> ProvisionedTenant:
    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, "reconciled-merchant")
    for n, (charge, cents) in enumerate(LEDGER.items()):
        payload = stripe_charge(f"evt_r{n}", "cus_r", cents, NOW)
        payload["data"]["object"]["id"] = charge
        assert post_webhook(api_module, "stripe", tenant, payload).status_code == 202
    connect_platform(api_module, mock, tenant, [platform_txn(s, c, NOW) for s, c in PLATFORM.items()])
    return tenant


@pytest.fixture(scope="module")
def api_module(topology: Any) -> Any:
    with httpx.Client(base_url=topology.api_url, timeout=15.0) as client:
        yield client


def test_reconciliation_items_totals_and_stable_digest(api: httpx.Client, merchant: ProvisionedTenant) -> None:
    run = run_reconciliation(api, merchant)
    assert run["status"] == "succeeded", run
    items = {
        i["external_id"]: (i["status"], i["ledger_amount_cents"], i["platform_amount_cents"]) for i in run["items"]
    }
    assert items == EXPECTED_ITEMS
    assert run["totals"] == {
        "matched": 2,
        "missing_in_ledger": 1,
        "missing_on_platform": 1,
        "amount_mismatch": 1,
        "items": 5,
        "ledger_cents": 10_000,
        "platform_cents": 6_600,
    }
    again = run_reconciliation(api, merchant)
    assert again["run_id"] != run["run_id"] and again["digest"] == run["digest"]
    status = api.get("/api/v1/reconciliation/status", headers=bearer(merchant)).json()
    assert status["overall_status"] == "discrepancies"
    assert status["platforms"] == [
        {
            "platform": "stripe",
            "status": "discrepancies",
            "last_run_id": again["run_id"],
            "finished_at": again["finished_at"],
            "discrepancies": 3,
        }
    ]


def test_rate_limit_is_honoured_and_the_run_succeeds(
    api: httpx.Client, mock: httpx.Client, merchant: ProvisionedTenant
) -> None:
    mock.post("/control/faults", json={"mode": "rate_limit", "surface": "payments", "count": 2, "retry_after_s": 1})
    started = datetime.now(UTC)
    run = run_reconciliation(api, merchant)
    assert run["status"] == "succeeded" and run["retries"] == 2
    assert (datetime.now(UTC) - started).total_seconds() >= 2.0  # two Retry-After: 1 waits
    assert len(run["items"]) == len(EXPECTED_ITEMS)


def test_persistent_upstream_errors_fail_the_run_with_no_items(
    api: httpx.Client, mock: httpx.Client, merchant: ProvisionedTenant
) -> None:
    mock.post("/control/faults", json={"mode": "upstream_error", "surface": "payments"})
    try:
        run = run_reconciliation(api, merchant)
    finally:
        mock.post("/control/faults", json={"mode": "success"})
    assert run["status"] == "failed"
    assert run["failure_reason"].startswith("upstream error (500); gave up after")
    assert run["items"] == [] and run["totals"] is None and run["digest"] is None
    status = api.get("/api/v1/reconciliation/status", headers=bearer(merchant)).json()
    assert status["overall_status"] == "failed"


def test_pagination_across_pages_loses_nothing(api: httpx.Client, mock: httpx.Client, runtime_engine: Engine) -> None:
    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, "paginated-merchant")
    key = f"sk_test_{tenant.tenant_id.hex}"
    seeded = mock.post(
        f"/control/accounts/{tenant.tenant_id}/seed",
        json={
            "api_key": key,
            "seed": 42,
            "count": 250,
            "start": int(WINDOW_START.timestamp()),
            "end": int(WINDOW_END.timestamp()),
        },
    )
    assert seeded.json()["transactions"] == 250
    api.put("/api/v1/platform-connections/stripe", headers=bearer(tenant), json={"api_key": key})
    run = run_reconciliation(api, tenant)
    assert run["status"] == "succeeded" and run["pages_fetched"] == 3
    ids = [i["external_id"] for i in run["items"]]
    assert len(ids) == len(set(ids)) == 250
    assert {i["status"] for i in run["items"]} == {"missing_in_ledger"}


@pytest.mark.parametrize(
    "body",
    [
        {"platform": "paypal", "window_start": "2026-11-01T00:00:00Z", "window_end": "2026-11-02T00:00:00Z"},
        {"platform": "stripe", "window_start": "2026-11-02T00:00:00Z", "window_end": "2026-11-01T00:00:00Z"},
        {"platform": "stripe", "window_start": "2025-01-01T00:00:00Z", "window_end": "2026-01-01T00:00:00Z"},
        {"platform": "stripe", "window_start": "2026-11-01T00:00:00", "window_end": "2026-11-02T00:00:00Z"},
    ],
)
def test_bad_reconciliation_requests_write_nothing(
    api: httpx.Client, runtime_engine: Engine, merchant: ProvisionedTenant, body: dict
) -> None:
    def runs() -> int:
        with tenant_transaction_sync(merchant.context, runtime_engine) as conn:
            return int(conn.execute(text("SELECT count(*) FROM reconciliation_runs")).scalar_one())

    before = runs()
    response = api.post("/api/v1/reconciliation/runs", headers=bearer(merchant), json=body)
    assert response.status_code == 422 and response.json()["code"] == "validation_error"
    assert runs() == before
    assert api.get("/api/v1/reconciliation/runs/not-a-uuid", headers=bearer(merchant)).status_code == 422


# ---- EG8.6 OpenAPI runtime fidelity ------------------------------------------------------------------------------


def test_live_responses_validate_against_the_committed_contract(
    api: httpx.Client, merchant: ProvisionedTenant, shop: tuple[ProvisionedTenant, ProvisionedTenant]
) -> None:
    validator = ContractValidator.committed()
    auth = bearer(merchant)
    job = api.post("/api/v1/attribution/jobs", headers=auth, json={"model": "last_touch"})
    run = run_reconciliation(api, merchant)
    webhook = stripe_charge("evt_fidelity", "cus_f", 100, NOW)
    exchanges = [
        ("GET", "/health/live", api.get("/health/live")),
        ("GET", "/health/ready", api.get("/health/ready")),
        ("GET", "/health/worker", api.get("/health/worker")),
        ("GET", "/api/v1/me", api.get("/api/v1/me", headers=auth)),
        ("GET", "/api/v1/me", api.get("/api/v1/me")),
        ("POST", "/webhooks/{platform}", post_webhook(api, "stripe", merchant, webhook)),
        ("POST", "/webhooks/{platform}", post_webhook(api, "stripe", merchant, webhook)),
        ("POST", "/webhooks/{platform}", post_webhook(api, "stripe", merchant, {"id": "x"})),
        ("POST", "/webhooks/{platform}", post_webhook(api, "stripe", merchant, b"{")),
        ("POST", "/webhooks/{platform}", post_webhook(api, "stripe", merchant, webhook, secret=shop[1].webhook_secret)),
        ("POST", "/webhooks/{platform}", post_webhook(api, "nope", merchant, webhook)),
        ("POST", "/api/v1/attribution/jobs", job),
        ("POST", "/api/v1/attribution/jobs", api.post("/api/v1/attribution/jobs", headers=auth, json={"model": "x"})),
        (
            "GET",
            "/api/v1/attribution/jobs/{job_id}",
            api.get(f"/api/v1/attribution/jobs/{job.json()['job_id']}", headers=auth),
        ),
        (
            "GET",
            "/api/v1/attribution/jobs/{job_id}",
            api.get(f"/api/v1/attribution/jobs/{NOW.strftime('%Y')}0000-0000-4000-8000-000000000000", headers=auth),
        ),
        ("GET", "/api/v1/attribution/results", api.get("/api/v1/attribution/results", headers=auth)),
        (
            "GET",
            "/api/v1/attribution/results",
            api.get("/api/v1/attribution/results", headers=auth, params={"model": "bayesian"}),
        ),
        (
            "GET",
            "/api/v1/reconciliation/runs/{run_id}",
            api.get(f"/api/v1/reconciliation/runs/{run['run_id']}", headers=auth),
        ),
        ("GET", "/api/v1/reconciliation/status", api.get("/api/v1/reconciliation/status", headers=auth)),
        (
            "PUT",
            "/api/v1/platform-connections/{platform}",
            api.put(
                "/api/v1/platform-connections/stripe",
                headers=auth,
                json={"api_key": f"sk_test_{merchant.tenant_id.hex}"},
            ),
        ),
    ]
    statuses = set()
    for method, path, response in exchanges:
        errors = validator.errors(method, path, response.status_code, response.json())
        assert errors == [], f"{method} {path} -> {response.status_code}: {errors}"
        statuses.add((path, response.status_code))
    assert len(statuses) >= 15  # successes and errors of every endpoint family were exercised


def test_mutated_responses_fail_the_contract(api: httpx.Client, merchant: ProvisionedTenant) -> None:
    """Non-vacuous negative controls: the validator rejects a dropped required field and a wrong type."""
    validator = ContractValidator.committed()
    body = api.get("/api/v1/reconciliation/status", headers=bearer(merchant)).json()
    path = "/api/v1/reconciliation/status"
    assert validator.errors("GET", path, 200, body) == []
    dropped = {k: v for k, v in body.items() if k != "overall_status"}
    assert any("overall_status" in e for e in validator.errors("GET", path, 200, dropped))
    assert validator.errors("GET", path, 200, {**body, "platforms": "stripe"}) != []
    results = api.get("/api/v1/attribution/results", headers=bearer(merchant)).json()
    assert validator.errors("GET", "/api/v1/attribution/results", 200, {**results, "total_revenue_cents": "lots"}) != []
