"""GET /metrics: Prometheus text format (logic in app.monitoring.metrics)."""

from __future__ import annotations

import time

from fastapi import APIRouter, FastAPI, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.monitoring.metrics import REQUEST_SECONDS, render

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus"}},
)
async def metrics() -> Response:
    return Response(await render(), media_type=CONTENT_TYPE_LATEST)


class RequestTiming:
    """Request duration by method, route template and status (a plain ASGI middleware: it adds no
    task or stream per request, unlike ``@app.middleware``, which matters on the ingest path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            route = scope.get("route")
            template = route.path if isinstance(route, APIRoute) else "unmatched"  # bounded label values
            REQUEST_SECONDS.labels(scope["method"], template, str(status)).observe(time.perf_counter() - started)


def install_request_timing(app: FastAPI) -> None:
    app.add_middleware(RequestTiming)
