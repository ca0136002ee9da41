"""Driving the LLM boundary directly, for benchmarks and the concurrency proofs.

Functions here take plain values (DSN, URLs, ids) so they also run in spawned processes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine

from app.core.settings import to_sync_url
from app.core.tenancy import TenantContext
from app.llm.boundary import Boundary
from app.llm.config import LLMConfig, provider_client
from app.llm.router import Tier

MOCK_PRICES = {"mock-mini": 1.0, "mock-standard": 5.0, "mock-large": 20.0}


def mock_config(**overrides: Any) -> LLMConfig:
    """The production defaults of DESIGN §8, priced for the mock's models; override any field."""
    prices = {**MOCK_PRICES, **{model: 1.0 for model in dict(overrides.get("models", {})).values()}}
    base: dict[str, Any] = {
        "provider": "mock",
        "models": {Tier.CHEAP: "mock-mini", Tier.STANDARD: "mock-standard", Tier.PREMIUM: "mock-large"},
        "prices_cents_per_1k": prices,
        "max_tokens": 200,
        "timeout_s": 5.0,
        "breaker_threshold": 3,
        "breaker_open_s": 300.0,
        "hourly_limit_cents": 500.0,
        "monthly_budget_cents": 2500.0,
        "env_kill_switch": False,
    }
    return LLMConfig(**{**base, **overrides})


def mock_boundary(dsn: str, mock_url: str, pool_size: int = 5, **overrides: Any) -> Boundary:
    engine = create_engine(to_sync_url(dsn), pool_size=pool_size, max_overflow=pool_size, hide_parameters=True)
    return Boundary(mock_config(**overrides), provider_client("mock", mock_url), engine)


@dataclass(frozen=True)
class Burst:
    """One process's share of a concurrent burst (picklable for multiprocessing)."""

    dsn: str
    mock_url: str
    tenant_id: str
    user_id: str
    prefix: str
    calls: int
    threads: int = 8


def run_burst(burst: Burst) -> list[str]:
    """Fire ``calls`` boundary calls from ``threads`` threads; returns each outcome as status:reason."""
    from concurrent.futures import ThreadPoolExecutor

    gate = mock_boundary(burst.dsn, burst.mock_url, pool_size=burst.threads)
    ctx = TenantContext(uuid.UUID(burst.tenant_id), burst.user_id)

    def one(n: int) -> str:
        outcome = gate.call(ctx, "explanation", f"{burst.prefix}-{n}", f"burst question {burst.prefix} {n}")
        return f"{outcome.status}:{outcome.blocked_reason or outcome.failure_reason or ''}"

    with ThreadPoolExecutor(max_workers=burst.threads) as pool:
        return list(pool.map(one, range(burst.calls)))
