"""EG8.2 (event attribution topology): signed webhook -> persistence -> scheduled recompute on the
real worker -> attributed revenue queryable through the API, with exact figures.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.services.tenants import ProvisionedTenant, create_tenant

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
        "data": {
            "object": {"id": f"ch_{event_id}", "amount": cents, "currency": "usd", "customer": customer}
        },
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
            return (
                conn.execute(text("SELECT count(*) FROM outbox WHERE completed_at IS NULL")).scalar_one() == 0
            )

    eventually(outbox_done, timeout_s=30)
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        dispatches = conn.execute(text("SELECT count(DISTINCT dispatched_at) FROM outbox")).scalar_one()
    assert dispatches <= len(STORY)  # bursts coalesce: never more messages than events

    body = results(api, tenant)
    assert body["served_model"] == "last_touch"
    assert {c["channel"]: (c["revenue_cents"], c["conversions"]) for c in body["channels"]} == EXPECTED
    assert body["total_revenue_cents"] == 14_750
    assert results(api, other)["channels"] == []  # the other tenant's API view is empty


def test_results_window_filters_by_day(
    api: httpx.Client, shop: tuple[ProvisionedTenant, ProvisionedTenant]
) -> None:
    tenant, _ = shop
    before = (NOW - timedelta(days=10)).date()
    assert results(api, tenant, start=str(before), end=str(before))["channels"] == []
    bad = api.get(
        "/api/v1/attribution/results",
        headers=bearer(tenant),
        params={"start": "2026-02-01", "end": "2026-01-01"},
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_window"


def test_last_touch_job_through_the_api(
    api: httpx.Client, shop: tuple[ProvisionedTenant, ProvisionedTenant]
) -> None:
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
