"""Driving the LLM boundary and its baseline, the plain HTTP call to the same mock provider, for
benchmarks and the concurrency proofs: the boundary's configuration, timed callers on threads or
on an event loop, and bursts in spawned processes.

Functions here take plain values (DSN, URLs, ids) so they also run in spawned processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import create_engine

from app.core.settings import Settings, to_sync_url
from app.core.tenancy import TenantContext
from app.llm.boundary import Boundary
from app.llm.config import LLMConfig
from mock_platform.faults import SURFACE_PREFIXES, Surface

# The mock serves its chat route where a provider does, so the baseline's path is the client's.
MOCK_CHAT_PATH = SURFACE_PREFIXES[Surface.LLM]
# (request id, prompt) -> None once the provider answered; raises otherwise. The request id only
# matters to the boundary (its idempotency claim); a direct call or a peer SDK ignores it.
SyncCall = Callable[[str, str], None]
AsyncCall = Callable[[str, str], Awaitable[None]]


def mock_config(**overrides: Any) -> LLMConfig:
    """The boundary as the settings' defaults configure it (docs/architecture.md); override any field. A model
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
    gate = mock_boundary(burst.dsn, burst.mock_url, pool_size=burst.threads)
    ctx = TenantContext(uuid.UUID(burst.tenant_id), burst.user_id)

    def one(n: int) -> str:
        outcome = gate.call(ctx, "explanation", f"{burst.prefix}-{n}", f"burst question {burst.prefix} {n}")
        return f"{outcome.status}:{outcome.blocked_reason or outcome.failure_reason or ''}"

    with ThreadPoolExecutor(max_workers=burst.threads) as pool:
        return list(pool.map(one, range(burst.calls)))


def chat_body(config: LLMConfig, model: str, prompt: str) -> dict[str, Any]:
    """The request the boundary's provider client sends: one user message, the configured token cap."""
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": config.max_tokens}


def direct_call(client: httpx.Client, config: LLMConfig, model: str, prompt: str) -> float:
    """The provider alone, in ms: the body, limits and timing the provider client has, sent straight to the mock."""
    started = time.perf_counter()
    response = client.post(
        MOCK_CHAT_PATH, json=chat_body(config, model, prompt), timeout=httpx.Timeout(config.timeout_s)
    )
    latency_ms = (time.perf_counter() - started) * 1000
    response.raise_for_status()  # an error answers fast: it must not pass for a fast provider
    return latency_ms


def direct_caller(client: httpx.Client, config: LLMConfig, model: str) -> SyncCall:
    """The direct call as a timed caller (threads: the boundary's own transport)."""

    def call(request_id: str, prompt: str) -> None:
        direct_call(client, config, model, prompt)

    return call


def direct_async_caller(client: httpx.AsyncClient, config: LLMConfig, model: str) -> AsyncCall:
    """The same request from an event loop (the transport style of an async SDK such as LiteLLM's)."""

    async def call(request_id: str, prompt: str) -> None:
        body = chat_body(config, model, prompt)
        response = await client.post(MOCK_CHAT_PATH, json=body, timeout=httpx.Timeout(config.timeout_s))
        response.raise_for_status()

    return call


def boundary_caller(gate: Boundary, tenants: list[TenantContext], endpoint: str = "route") -> SyncCall:
    """A boundary call with every control on; consecutive calls go to consecutive tenants. Anything
    but a provider-backed success (blocked, failed, served from the cache) raises: it would not be
    the work the direct call does."""
    turn = iter(range(1 << 62))
    lock = threading.Lock()

    def call(request_id: str, prompt: str) -> None:
        with lock:
            ctx = tenants[next(turn) % len(tenants)]
        outcome = gate.call(ctx, endpoint, request_id, prompt)
        if outcome.status != "succeeded" or outcome.was_cached or not outcome.provider_attempted:
            reason = outcome.blocked_reason or outcome.failure_reason or ("cached" if outcome.was_cached else "")
            raise RuntimeError(f"boundary call {request_id}: {outcome.status} {reason}")

    return call


@dataclass
class Timed:
    """One caller's wall times (ms) over a batch of calls, and the calls that did not succeed."""

    samples: list[float] = field(default_factory=list)
    failures: int = 0
    first_failure: str | None = None

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.first_failure is None:
            self.first_failure = f"{type(exc).__name__}: {exc}"[:300]


def timed_threads(call: SyncCall, requests: list[tuple[str, str]], concurrency: int) -> Timed:
    """``concurrency`` threads take the requests in order, each timing its own calls. A failed call is
    counted, not timed: a fast error must not pass for a fast call."""
    timed, lock, queue = Timed(), threading.Lock(), iter(requests)

    def worker() -> None:
        while True:
            with lock:
                item = next(queue, None)
            if item is None:
                return
            started = time.perf_counter()
            try:
                call(*item)
            except Exception as exc:  # the batch goes on; the measurement reports it as invalid
                with lock:
                    timed.failed(exc)
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                timed.samples.append(elapsed)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for running in [pool.submit(worker) for _ in range(concurrency)]:
            running.result()
    return timed


def timed_tasks(
    loop: asyncio.AbstractEventLoop, call: AsyncCall, requests: list[tuple[str, str]], concurrency: int
) -> Timed:
    """The same on one event loop: ``concurrency`` tasks. The loop is the caller's and lives for the
    whole run, because an async SDK keeps clients bound to the loop that made them."""
    timed, queue = Timed(), iter(requests)

    async def worker() -> None:
        for item in queue:  # tasks share the iterator: the loop runs one of them at a time
            started = time.perf_counter()
            try:
                await call(*item)
            except Exception as exc:
                timed.failed(exc)
                continue
            timed.samples.append((time.perf_counter() - started) * 1000)

    async def batch() -> None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    loop.run_until_complete(batch())
    return timed
