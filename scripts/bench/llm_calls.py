"""Driving the LLM boundary directly, for benchmarks and the concurrency proofs.

Functions here take plain values (DSN, URLs, ids) so they also run in spawned processes.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine

from app.core.settings import Settings, to_sync_url
from app.core.tenancy import TenantContext
from app.llm.boundary import Boundary
from app.llm.config import LLMConfig


def mock_config(**overrides: Any) -> LLMConfig:
    """The boundary as the settings' defaults configure it (DESIGN §8); override any field. A model
    the defaults do not price gets 1 cent per 1,000 tokens."""
    # Defaults only, not this process's environment: a run under LLM_* overrides (the fault runs')
    # must not change what the proofs measure.
    defaults = LLMConfig.from_settings(Settings.model_construct())
    extra_models = dict(overrides.get("models", {})).values()
    prices = {**defaults.prices_cents_per_1k, **{model: 1.0 for model in extra_models}}
    return dataclasses.replace(defaults, **{"prices_cents_per_1k": prices, **overrides})


def mock_boundary(dsn: str, mock_url: str, pool_size: int = 5, **overrides: Any) -> Boundary:
    engine = create_engine(to_sync_url(dsn), pool_size=pool_size, max_overflow=pool_size, hide_parameters=True)
    return Boundary(mock_config(**overrides), mock_url, engine=engine)


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
