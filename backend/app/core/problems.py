"""Errors in one JSON shape: RFC 9457 problem details."""

from __future__ import annotations

import logging
import socket
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger(__name__)


class ProblemError(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str, code: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.code = code
        self.extra = extra


def problem_response(
    status: int, title: str, detail: str, code: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


# Only these mean that the database cannot be reached. Any other OSError is a bug or bad input (a
# date conversion that overflows raises one), never an outage to retry; app.core.db turns whatever
# a failed connect raises (a unix socket whose file is gone: FileNotFoundError) into ConnectionError.
UNREACHABLE: tuple[type[OSError], ...] = (ConnectionError, TimeoutError, socket.gaierror)
# connection exceptions; the server out of connections, memory or disk (53); shutdown, restart,
# cannot connect now, a statement stopped by its timeout (57)
UNAVAILABLE_SQLSTATES = ("08", "53", "57")
RETRY_AFTER_S = "1"


def database_unavailable(request: Request, cause: str) -> JSONResponse:
    log.warning("database unavailable (%s) on %s %s; answered 503", cause, request.method, request.url.path)
    response = problem_response(
        503,
        "Service Unavailable",
        "the database is unavailable; retry shortly (a retried webhook that was stored after all is a duplicate)",
        "database_unavailable",
        instance=request.url.path,
    )
    response.headers["Retry-After"] = RETRY_AFTER_S
    return response


def _database_error(request: Request, exc: Exception, sqlstate: str, cause: str) -> JSONResponse:
    """Input PostgreSQL cannot store (SQLSTATE class 22, data exception) is the caller's error;
    a lost or refused connection, a server out of resources or a statement cancelled by its
    timeout (classes 08, 53, 57) is a 503 worth retrying."""
    if sqlstate.startswith(UNAVAILABLE_SQLSTATES):
        return database_unavailable(request, cause)
    if sqlstate.startswith("22"):
        return problem_response(
            422, "Unprocessable Content", "a value cannot be stored as given", "invalid_data", instance=request.url.path
        )
    raise exc


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, exc.code, instance=request.url.path, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = "Not Found" if exc.status_code == 404 else "HTTP error"
        response = problem_response(
            exc.status_code, title, str(exc.detail), f"http_{exc.status_code}", instance=request.url.path
        )
        response.headers.update(exc.headers or {})  # e.g. Allow on 405, as RFC 9110 requires
        return response

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or getattr(exc.orig, "pgcode", "") or "")
        if exc.connection_invalidated:
            return database_unavailable(request, type(exc.orig).__name__)
        return _database_error(request, exc, sqlstate, type(exc.orig).__name__)

    @app.exception_handler(asyncpg.PostgresError)
    async def _database_call(request: Request, exc: asyncpg.PostgresError) -> JSONResponse:
        return _database_error(request, exc, str(exc.sqlstate or ""), type(exc).__name__)

    async def _unreachable(request: Request, exc: Exception) -> JSONResponse:
        """The database socket is gone (server stopped or restarting): nothing was stored; retry."""
        return database_unavailable(request, type(exc).__name__)

    for unreachable in UNREACHABLE:
        app.add_exception_handler(unreachable, _unreachable)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))} for err in exc.errors()
        ]
        return problem_response(
            422,
            "Unprocessable Content",
            "request failed validation",
            "validation_error",
            instance=request.url.path,
            errors=errors,
        )
