"""Structured logs: one JSON object per line from api, worker and relay, with the request id and the
tenant where they are known, so an operator can follow one id from a request to the work it caused.

- The api takes ``X-Request-ID`` from the caller (when it is a sane token) or makes one, answers with
  it, and every line logged while serving the request carries it (``RequestIdMiddleware``).
- Work the request puts in the outbox carries the id in its payload; the relay hands it to Celery as
  a message header and the worker's lines for that task carry it (``app.worker.celery_app``).

Fields: ``ts`` (UTC, ms), ``level``, ``logger``, ``message``, then ``request_id``, ``tenant_id`` and
``exception`` when there are any.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
TENANT_ID: ContextVar[str | None] = ContextVar("tenant_id", default=None)
HEADER = "x-request-id"
# A caller's id is kept only when it is a short token: it lands in logs and in the outbox.
ACCEPTED = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def correlation() -> dict[str, str]:
    """What an outbox payload carries so the worker's lines name the request that caused the work."""
    request_id = REQUEST_ID.get()
    return {"request_id": request_id} if request_id else {}


def request_id_from(header: str | None) -> str:
    return header if header and ACCEPTED.match(header) else uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        tenant_id = getattr(record, "tenant_id", None) or TENANT_ID.get()
        if request_id:
            entry["request_id"] = request_id
        if tenant_id:
            entry["tenant_id"] = str(tenant_id)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def dict_config(level: str | int) -> dict[str, Any]:
    """The same setup as ``configure``, as logging.config.dictConfig takes it (uvicorn applies it)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error")},
    }


def configure(level: str | int) -> None:
    """Every logger of the process writes JSON lines to stderr (which the topology keeps per service)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class RequestIdMiddleware:
    """Pure ASGI (no per-request task or body buffering): sets the id for the request's context and
    returns it in the response headers."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == b"x-request-id"), None)
        request_id = request_id_from(given.decode("latin-1") if given else None)
        request_token, tenant_token = REQUEST_ID.set(request_id), TENANT_ID.set(None)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(request_token)
            TENANT_ID.reset(tenant_token)
