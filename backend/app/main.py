"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI

from app.attribution import routes as attribution
from app.core.db import close_call_pools
from app.core.logs import RequestIdMiddleware
from app.core.problems import install_problem_handlers
from app.core.settings import get_settings
from app.llm import routes as llm
from app.monitoring import health_routes as health
from app.monitoring import metrics_routes as metrics
from app.openapi import install_openapi
from app.reconciliation import routes as reconciliation
from app.tenants import routes as tenants
from app.tenants.auth import known_query_parameters
from app.webhooks import routes as webhooks
from app.webhooks.secret_cache import close_secret_cache
from app.worker.celery_app import pool_result_sessions


def freeze_startup_heap() -> None:
    """Move everything allocated so far (modules, routes, schemas, settings) out of the collector's
    reach. A full collection walks every tracked object, and with this heap each one was an
    event-loop stall long enough to set the intake's p99 at high rates.
    What a request allocates afterwards is still collected as usual."""
    gc.collect()
    gc.freeze()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Pooled result-backend sessions while serving; the intake's secret listener and pools closed
    after. (The outbox relay runs in the worker: ``app.outbox.relay_step``.)"""
    pool_result_sessions()
    freeze_startup_heap()
    try:
        yield
    finally:
        await close_secret_cache()
        await close_call_pools()


def create_app() -> FastAPI:
    """The app a server runs: settings validated first, so a bad one is named before serving anything."""
    get_settings()
    return build_app()


def build_app() -> FastAPI:
    """Routes, handlers and middleware, without reading settings: enough to describe the API
    (``scripts/contract.py`` exports the OpenAPI document from it)."""
    app = FastAPI(
        title="Attribution backend", version="0.1.0", lifespan=lifespan, dependencies=[Depends(known_query_parameters)]
    )
    install_problem_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health.router)
    app.include_router(tenants.router)
    app.include_router(webhooks.router)
    app.include_router(attribution.router)
    app.include_router(reconciliation.router)
    app.include_router(llm.router)
    app.include_router(metrics.router)
    metrics.install_request_timing(app)
    install_openapi(app)
    return app
