"""POST /webhooks/{platform}: signed webhook intake (logic in app.webhooks.intake)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.core.problems import problem_response
from app.core.schemas import problems
from app.core.settings import get_settings
from app.webhooks.intake import IngestOutcome, WebhookRequest, ingest
from app.webhooks.schemas import WebhookReceipt

router = APIRouter(tags=["webhooks"])
RECEIPTS: dict[int | str, dict[str, Any]] = {
    200: {"model": WebhookReceipt, "description": "duplicate: already received, nothing new stored"},
    202: {"model": WebhookReceipt, "description": "accepted: stored, attribution scheduled"},
    **problems(400, 401, 404, 408, 413, 422),
}

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    413: "Content Too Large",
    422: "Unprocessable Content",
}


class BodyTimeoutError(Exception):
    """The client stopped sending its body (a slow or stalled sender)."""


async def read_capped(request: Request, limit: int, chunk_timeout_s: float) -> bytes | None:
    """The body, or None as soon as it exceeds ``limit`` (never buffers more than limit + one chunk).
    Raises BodyTimeoutError when no data arrives for ``chunk_timeout_s``: a trickling client must
    not hold a connection and its buffer for as long as it likes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    stream = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(chunk_timeout_s):  # no task per chunk, unlike wait_for before 3.12
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            break
        except TimeoutError as exc:
            raise BodyTimeoutError from exc
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


SIGNED_REQUEST: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
        for name, text in (
            ("x-tenant-id", "the tenant UUID the webhook is for"),
            ("webhook-id", "unique message id (Standard Webhooks); replays of it are duplicates"),
            ("webhook-timestamp", "unix seconds; must be within the tolerance (300 s)"),
            ("webhook-signature", "space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>`"),
        )
    ],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
}


@router.post(
    "/webhooks/{platform}",
    status_code=202,
    responses=RECEIPTS,
    response_class=JSONResponse,
    openapi_extra=SIGNED_REQUEST,
)
async def receive_webhook(platform: str, request: Request) -> JSONResponse:
    settings = get_settings()
    try:
        body = await read_capped(request, settings.webhook_max_body_bytes, settings.webhook_body_timeout_s)
    except BodyTimeoutError:
        detail = f"no body data for {settings.webhook_body_timeout_s:g} s; nothing was stored"
        response = problem_response(408, "Request Timeout", detail, "body_timeout", instance=request.url.path)
        response.headers["Connection"] = "close"
        return response
    if body is None:
        outcome = IngestOutcome(413, "payload_too_large", f"body exceeds {settings.webhook_max_body_bytes} bytes")
    else:
        outcome = await ingest(WebhookRequest(platform, request.headers, body), settings)
    if outcome.rejected:
        return problem_response(
            outcome.status,
            TITLES.get(outcome.status, "Error"),
            outcome.detail,
            outcome.code,
            instance=request.url.path,
            **outcome.extra,
        )
    return JSONResponse({"status": outcome.code, **outcome.extra}, status_code=outcome.status)
