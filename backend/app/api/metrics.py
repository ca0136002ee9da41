"""GET /metrics: Prometheus text format (logic in app.services.metrics)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST

from app.services.metrics import REQUEST_SECONDS, render

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus"}},
)
async def metrics() -> Response:
    return Response(await render(), media_type=CONTENT_TYPE_LATEST)


def install_request_timing(app: FastAPI) -> None:
    @app.middleware("http")
    async def time_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = route.path if isinstance(route, APIRoute) else "unmatched"  # bounded label values
        REQUEST_SECONDS.labels(request.method, template, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response
