"""The mock platform's HTTP surface. Later issues add the payment and LLM APIs here."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

from mock_platform.faults import FaultMode, FaultState, Surface


class FaultRequest(BaseModel):
    mode: FaultMode
    surface: Surface | None = Field(default=None, description="one surface, or all when omitted")
    slow_ms: int | None = Field(default=None, ge=0, le=120_000)
    retry_after_s: int | None = Field(default=None, ge=0, le=3600)


def create_app() -> FastAPI:
    app = FastAPI(title="mock_platform", version="0.1.0")
    state = FaultState()
    app.state.faults = state

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/control/faults")
    async def get_faults() -> dict[str, object]:
        return state.snapshot()

    @app.post("/control/faults")
    async def set_faults(request: FaultRequest) -> dict[str, object]:
        state.set(request.mode, request.surface)
        if request.slow_ms is not None:
            state.slow_ms = request.slow_ms
        if request.retry_after_s is not None:
            state.retry_after_s = request.retry_after_s
        return state.snapshot()

    return app
