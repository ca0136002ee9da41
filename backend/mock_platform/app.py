"""The mock platform's HTTP surface: control endpoints, the payment API, and (later) the LLM API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mock_platform.faults import FaultMode, FaultState, Surface, surface_of
from mock_platform.llm import build_router as build_llm_router
from mock_platform.payments import Account, build_router


class FaultRequest(BaseModel):
    mode: FaultMode
    surface: Surface | None = Field(default=None, description="one surface, or all when omitted")
    count: int | None = Field(default=None, ge=1, description="fault only the next N requests")
    slow_ms: int | None = Field(default=None, ge=0, le=120_000)
    retry_after_s: int | None = Field(default=None, ge=0, le=3600)


def create_app() -> FastAPI:
    app = FastAPI(title="mock_platform", version="0.1.0")
    state = FaultState()
    accounts: dict[str, Account] = {}
    app.state.faults = state
    app.include_router(build_router(accounts))
    app.include_router(build_llm_router())

    @app.middleware("http")
    async def inject_faults(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        surface = surface_of(request.url.path)
        mode = state.take(surface) if surface else FaultMode.SUCCESS
        if mode is FaultMode.RATE_LIMIT:
            return JSONResponse(
                {"error": {"type": "rate_limit"}},
                status_code=429,
                headers={"Retry-After": str(state.retry_after_s)},
            )
        if mode in (FaultMode.UPSTREAM_ERROR, FaultMode.ERROR):
            return JSONResponse({"error": {"type": "api_error"}}, status_code=500)
        if mode is FaultMode.SLOW:
            await asyncio.sleep(state.slow_ms / 1000)
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/control/faults")
    async def get_faults() -> dict[str, object]:
        return state.snapshot()

    @app.post("/control/faults")
    async def set_faults(request: FaultRequest) -> dict[str, object]:
        state.set(request.mode, request.surface, request.count)
        if request.slow_ms is not None:
            state.slow_ms = request.slow_ms
        if request.retry_after_s is not None:
            state.retry_after_s = request.retry_after_s
        return state.snapshot()

    return app
