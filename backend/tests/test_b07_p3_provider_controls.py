"""Provider controls: switching provider is configuration only; the hard timeout really bites.

Both tests talk to real HTTP servers: the topology's mock platform, and a second one started here
to stand for a different provider.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.core.settings import Settings
from app.llm.boundary import Boundary
from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.harness import REPO_ROOT, poll_until
from scripts.topology import Topology
from scripts.topology.processes import ManagedProcess, free_port

pytestmark = pytest.mark.integration

BASE_ENV = {
    "DATABASE_URL": "postgresql+asyncpg://app_user@localhost/unused",
    "CELERY_BROKER_URL": "sqla+postgresql://app_user@localhost/unused",
    "CELERY_RESULT_BACKEND": "db+postgresql://app_user@localhost/unused",
}


def boundary_from(env: dict[str, str], engine: Engine) -> Boundary:
    """What the worker does, from an environment: the configuration is the only input."""
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("LLM_")]:
            patch.delenv(key)
        for key, value in {**BASE_ENV, **env}.items():
            patch.setenv(key, value)
        settings = Settings()  # type: ignore[call-arg]
    return Boundary.from_settings(settings, engine)


@pytest.fixture(scope="module")
def second_provider(test_artifacts: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ}
    server = ManagedProcess(
        "second_provider",
        [sys.executable, "-m", "mock_platform", "--port", str(port)],
        env,
        REPO_ROOT,
        test_artifacts / "second_provider.log",
    )
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        assert poll_until(f"{url}/health", timeout_s=30, interval_s=0.1).ok
        yield url
    finally:
        server.stop(grace_s=2)


@pytest.fixture
def tenant(runtime_engine: Engine) -> ProvisionedTenant:
    with runtime_engine.begin() as conn:
        return create_tenant(conn, f"p3-{uuid.uuid4().hex[:6]}")


def test_provider_swap_config_only_proof(
    topology: Topology, second_provider: str, runtime_engine: Engine, tenant: ProvisionedTenant
) -> None:
    first = boundary_from({"LLM_PROVIDER": "mock", "LLM_BASE_URL": topology.mock_url}, runtime_engine)
    second = boundary_from(
        {"LLM_PROVIDER": "openai_compatible", "LLM_BASE_URL": second_provider, "LLM_API_KEY": "sk-test-not-secret"},
        runtime_engine,
    )
    outcomes = [
        b.call(tenant.context, "explanation", f"swap-{b.config.provider}", "same question") for b in (first, second)
    ]
    assert [o.status for o in outcomes] == ["succeeded", "succeeded"]
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        rows = conn.execute(text("SELECT provider, provider_attempted FROM llm_api_calls ORDER BY created_at")).all()
    assert [tuple(r) for r in rows] == [("mock", True), ("openai_compatible", True)]
    served = httpx.get(f"{second_provider}/control/faults", timeout=5).json()["requests"]["llm"]
    assert served >= 1  # the second provider really answered


def test_timeout_non_vacuous_negative_control(
    topology: Topology, runtime_engine: Engine, tenant: ProvisionedTenant
) -> None:
    mock = httpx.Client(base_url=topology.mock_url, timeout=10)
    mock.post("/control/faults", json={"mode": "slow", "surface": "llm", "slow_ms": 1500})
    try:
        env = {
            "LLM_BASE_URL": topology.mock_url,
            "LLM_MODEL_CHEAP": "mock-timeout-probe",
            "LLM_PRICES_CENTS_PER_1K": '{"mock-timeout-probe": 1, "mock-standard": 5, "mock-large": 20}',
        }
        too_slow = boundary_from({**env, "LLM_TIMEOUT_S": "0.5"}, runtime_engine).call(
            tenant.context, "route", "timeout-short", "slow provider"
        )
        in_time = boundary_from({**env, "LLM_TIMEOUT_S": "5"}, runtime_engine).call(
            tenant.context, "route", "timeout-long", "slow provider, more patience"
        )
    finally:
        mock.post("/control/faults", json={"mode": "success"})
        mock.close()
    assert (too_slow.status, too_slow.failure_reason, too_slow.provider_attempted) == ("failed", "timeout", True)
    assert in_time.status == "succeeded" and in_time.text
