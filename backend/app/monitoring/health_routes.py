"""Liveness, readiness and worker health. Bodies always say which check failed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.core.settings import get_settings
from app.monitoring.metrics import WORKER_PROBE_AT, WORKER_PROBE_HEALTHY
from app.monitoring.readiness import WorkerProbeCache, probe_worker_bounded, readiness
from app.monitoring.schemas import HealthReport, Live

router = APIRouter(prefix="/health", tags=["health"])
_worker_cache = WorkerProbeCache()
REPORTS: dict[int | str, dict[str, Any]] = {
    200: {"model": HealthReport, "description": "ready"},
    503: {"model": HealthReport, "description": "not ready; `failed` names the checks"},
}


def _answer(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)


@router.get("/live", response_model=Live)
async def live() -> Live:
    return Live(status="live")


@router.get("/ready", responses=REPORTS, response_class=JSONResponse)
async def ready() -> JSONResponse:
    report = await readiness()
    return _answer(report.body())


@router.get("/worker", responses=REPORTS, response_class=JSONResponse)
async def worker(
    fresh: bool = Query(default=False, description="skip the short result cache"),
) -> JSONResponse:
    settings = get_settings()
    cached = None if fresh else _worker_cache.fresh(settings.worker_probe_cache_s)
    if cached is not None:
        return _answer({**cached, "cached": True})
    body = await probe_worker_bounded(settings.worker_probe_timeout_s)
    _worker_cache.store(body)
    WORKER_PROBE_HEALTHY.set(1 if body["status"] == "ready" else 0)
    WORKER_PROBE_AT.set_to_current_time()
    return _answer({**body, "cached": False})
