"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from app.api import health, tenants
from app.core.problems import install_problem_handlers
from app.core.settings import get_settings


def create_app() -> FastAPI:
    get_settings()  # fail fast, naming the bad setting, before serving anything
    app = FastAPI(title="Attribution backend", version="0.1.0")
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(tenants.router)
    return app
