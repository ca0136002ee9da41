"""EG8.3 (Bayesian part): on the real prefork worker, a Bayesian job sized to overrun is killed by
the hard time limit, recorded as timed out with the last-touch fallback, and the same worker goes
on serving; a control with a generous limit completes with a posterior.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.topology import Topology

from .webhook_client import bearer, eventually

pytestmark = pytest.mark.slow

CHANNELS = {"search": 40, "social": 90}  # revenue cents per touch
FINAL = ("succeeded", "failed", "timed_out")


@pytest.fixture(scope="module")
def modelled(runtime_engine: Engine) -> ProvisionedTenant:
    """A tenant with 30 days of touchpoints and conversions, inserted directly (the webhook path has its own tests)."""
    rng = np.random.default_rng(7)
    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, "bayesian")
    start = datetime.now(UTC) - timedelta(days=30)
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        for day in range(30):
            at = start + timedelta(days=day, hours=12)
            revenue = 0
            for channel, value in CHANNELS.items():
                touches = int(rng.poisson(10))
                revenue += touches * value
                for n in range(touches):
                    conn.execute(
                        text(
                            "INSERT INTO attribution_events (tenant_id, platform, external_event_id, event_type, "
                            "customer_key, channel, occurred_at) VALUES (:t, 'touchpoints', :e, 'touchpoint', :c, :ch, :at)"
                        ),
                        {
                            "t": tenant.tenant_id,
                            "e": f"tp-{day}-{channel}-{n}",
                            "c": f"c{day}-{n}",
                            "ch": channel,
                            "at": at,
                        },
                    )
            conn.execute(
                text(
                    "INSERT INTO attribution_events (tenant_id, platform, external_event_id, event_type, customer_key, "
                    "occurred_at, revenue_cents, currency) VALUES (:t, 'stripe', :e, 'conversion', :c, :at, :r, 'USD')"
                ),
                {
                    "t": tenant.tenant_id,
                    "e": f"evt-{day}",
                    "c": f"c{day}-0",
                    "at": at + timedelta(hours=1),
                    "r": revenue,
                },
            )
    return tenant


def run_job(api: httpx.Client, tenant: ProvisionedTenant, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    created = api.post("/api/v1/attribution/jobs", headers=bearer(tenant), json=payload)
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]

    def done() -> dict[str, Any] | None:
        job = api.get(f"/api/v1/attribution/jobs/{job_id}", headers=bearer(tenant)).json()
        return job if job["status"] in FINAL else None

    return eventually(done, timeout_s=timeout_s, interval_s=0.2)


def test_hard_limit_kills_falls_back_and_worker_keeps_serving(
    api: httpx.Client, topology: Topology, modelled: ProvisionedTenant
) -> None:
    worker_pid = topology.processes["worker"].pid
    oversized = {
        "model": "bayesian",
        "params": {"draws": 200_000, "warmup": 0},
        "time_limit_s": 3,
        "soft_time_limit_s": 0,
    }  # hard kill only
    job = run_job(api, modelled, oversized, timeout_s=30)
    assert job["status"] == "timed_out", job
    assert job["fallback_event"] == "deterministic_last_touch"
    assert job["error"] in ("TimeLimitExceeded", "WorkerLostError")
    assert "Hard time limit (3.0s) exceeded" in topology.processes["worker"].log_path.read_text()

    served = api.get("/api/v1/attribution/results", headers=bearer(modelled), params={"model": "bayesian"}).json()
    assert served["served_model"] == "last_touch"
    assert served["fallback_event"] == "deterministic_last_touch"
    assert served["total_revenue_cents"] > 0  # last-touch results are really there to serve

    # The same worker process serves the next task, promptly.
    started = datetime.now(UTC)
    after = run_job(api, modelled, {"model": "last_touch"}, timeout_s=20)
    assert after["status"] == "succeeded"
    assert (datetime.now(UTC) - started).total_seconds() < 10
    assert topology.processes["worker"].pid == worker_pid and topology.processes["worker"].alive()


def test_soft_limit_also_ends_in_fallback(api: httpx.Client, modelled: ProvisionedTenant) -> None:
    job = run_job(
        api,
        modelled,
        {
            "model": "bayesian",
            "params": {"draws": 200_000, "warmup": 0},
            "time_limit_s": 8,
            "soft_time_limit_s": 2,
        },
        timeout_s=30,
    )
    assert job["status"] == "timed_out" and job["error"] == "SoftTimeLimitExceeded"
    assert job["fallback_event"] == "deterministic_last_touch"


def test_generous_limit_completes_with_a_posterior(api: httpx.Client, modelled: ProvisionedTenant) -> None:
    job = run_job(
        api,
        modelled,
        {"model": "bayesian", "params": {"draws": 600, "warmup": 300, "chains": 4}, "time_limit_s": 120},
        timeout_s=120,
    )
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert {c["channel"] for c in result["channels"]} == set(CHANNELS)
    assert result["chains"] == 4 and result["draws"] == 600 and result["max_rhat"] < 1.1
    for channel in result["channels"]:
        low, high = channel["beta_ci90"]
        assert low <= channel["beta_mean"] <= high
    served = api.get("/api/v1/attribution/results", headers=bearer(modelled), params={"model": "bayesian"}).json()
    assert served["served_model"] == "bayesian" and served["posterior"]["channels"]


def test_job_requests_are_validated(api: httpx.Client, modelled: ProvisionedTenant) -> None:
    for payload in (
        {"model": "magic"},
        {"model": "bayesian", "params": {"draws": 10_000_000}},
        {"model": "bayesian", "params": {"chains": 3.5}},
        {"model": "bayesian", "params": {"chains": "3"}},
        {"model": "bayesian", "time_limit_s": 0.5},
    ):
        response = api.post("/api/v1/attribution/jobs", headers=bearer(modelled), json=payload)
        assert response.status_code == 422, payload
        assert response.json()["code"] == "validation_error"
