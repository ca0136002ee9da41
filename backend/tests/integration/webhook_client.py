"""Talking to the live api as tenants do: signed webhooks, LLM tasks, and polling for results."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from app.tenants.service import ProvisionedTenant
from app.webhooks.signatures import sign

T = TypeVar("T")


def signed_headers(
    tenant: ProvisionedTenant,
    body: bytes,
    *,
    webhook_id: str | None = None,
    timestamp: int | None = None,
    secret: str | None = None,
) -> dict[str, str]:
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "x-tenant-id": str(tenant.tenant_id),
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret or tenant.webhook_secret, webhook_id, timestamp, body),
    }


def touchpoint() -> dict[str, str]:
    """A valid touchpoint body with a fresh event id."""
    return {
        "event_id": f"evt-{uuid.uuid4().hex[:10]}",
        "customer_id": "cust-1",
        "channel": "search",
        "occurred_at": datetime.now(UTC).isoformat(),
    }


def post_webhook(
    api: httpx.Client,
    platform: str,
    tenant: ProvisionedTenant,
    payload: Any,
    request_id: str | None = None,
    **header_overrides: Any,
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = signed_headers(tenant, body, **header_overrides)
    if request_id is not None:
        headers["x-request-id"] = request_id
    return api.post(f"/webhooks/{platform}", content=body, headers=headers)


def eventually(probe: Callable[[], T | None], timeout_s: float = 20.0, interval_s: float = 0.1) -> T:
    """Poll until ``probe`` returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last: {last!r})")


def bearer(tenant: ProvisionedTenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.api_key}"}


def run_llm_task(api: httpx.Client, tenant: ProvisionedTenant, task: str, request_id: str, question: str = "") -> Any:
    """Request an LLM task and wait until the worker has finished it; returns the job body."""
    body = {"request_id": request_id, "question": question}
    created = api.post(f"/api/v1/llm/{task}", headers=bearer(tenant), json=body)
    assert created.status_code in (200, 202), created.text
    job_id = created.json()["job_id"]

    def done() -> Any:
        job = api.get(f"/api/v1/llm/jobs/{job_id}", headers=bearer(tenant)).json()
        return job if job["status"] != "queued" else None

    return eventually(done, timeout_s=30, interval_s=0.1)
