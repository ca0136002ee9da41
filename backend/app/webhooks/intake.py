"""Webhook ingestion: authenticate, validate, scrub, and persist an event with its outbox row.

After authentication, one server-side function call stores the event and the outbox row that
schedules its attribution, in one transaction: they commit together, or neither does. A payload
that fails after the tenant is authenticated is kept as a dead letter (scrubbed); an
unauthenticated one writes nothing, so no caller can fill another tenant's tables.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.core.db import call
from app.core.logs import REQUEST_ID
from app.core.sealing import PURPOSE_WEBHOOK_SECRET, open_or_none
from app.core.settings import Settings
from app.core.tenancy import TenantContext
from app.webhooks.payloads import PLATFORMS, NormalizedEvent, Rejection, interpret
from app.webhooks.secret_cache import TimedSecret, secret_cache, timed
from app.webhooks.signatures import verify

TENANT_HEADER = "x-tenant-id"

# Server-side functions (migrations 0010, 0024, 0025, 0031): each call sets the tenant context from the
# token passed first (signed here for the tenant the request names; user "webhook") and is one
# transaction. The secrets come sealed (0018) with the seconds each has left, open here (one that does
# not open counts as absent) and are kept by the secret cache until the database says they changed.
WEBHOOK_USER = "webhook"
SECRETS_CALL = "SELECT secret_sealed, seconds_left FROM webhook_intake_timed_secrets($1)"
# The event and the outbox row that schedules its attribution commit together; a duplicate stores
# neither and returns the first delivery's event id. The request id rides in the outbox row's payload
# to the recompute's log lines (app.core.logs).
EVENT_CALL = "SELECT event_id, duplicate FROM webhook_intake_event($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
DEAD_LETTER_CALL = "SELECT webhook_intake_dead_letter($1, $2, $3, $4, $5, $6, $7, $8)"


@dataclass
class IngestOutcome:
    status: int
    code: str  # accepted | duplicate | a rejection reason
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        return self.status >= 400


@dataclass(frozen=True)
class WebhookRequest:
    platform: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")


def parse_tenant(raw: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


async def ingest(request: WebhookRequest, settings: Settings) -> IngestOutcome:
    if request.platform not in PLATFORMS:
        return IngestOutcome(404, "unknown_platform", f"no webhook platform {request.platform!r}")
    if len(request.body) > settings.webhook_max_body_bytes:
        return IngestOutcome(413, "payload_too_large", f"body exceeds {settings.webhook_max_body_bytes} bytes")
    tenant_id = parse_tenant(request.headers.get(TENANT_HEADER))
    if tenant_id is None:
        return IngestOutcome(401, "missing_tenant", f"{TENANT_HEADER} header must be a tenant UUID")

    # The request's database calls share one deadline, as each call has: the sender hears back
    # within DB_CALL_TIMEOUT_S whichever call the database stops answering in.
    async with asyncio.timeout(settings.db_call_timeout_s):
        return await _authenticate_and_persist(tenant_id, request, settings)


async def _authenticate_and_persist(tenant_id: uuid.UUID, request: WebhookRequest, settings: Settings) -> IngestOutcome:
    token = TenantContext(tenant_id, WEBHOOK_USER).token()

    async def fetch() -> list[TimedSecret]:
        fetched_at = time.monotonic()  # before the database's now(): the secret ends here no later than there
        rows = await call(SECRETS_CALL, token)
        return timed(rows, lambda sealed: open_or_none(sealed, tenant_id, PURPOSE_WEBHOOK_SECRET), fetched_at)

    secrets = await secret_cache().secrets(tenant_id, fetch)
    failure = verify(
        secrets,
        request.webhook_id,
        request.headers.get("webhook-timestamp"),
        request.headers.get("webhook-signature"),
        request.body,
        now=time.time(),
        tolerance_s=settings.webhook_tolerance_s,
    )
    if failure is not None:
        return IngestOutcome(401, failure.value, "webhook signature verification failed")
    return await _persist(tenant_id, token, request)


async def _persist(tenant_id: uuid.UUID, token: str, request: WebhookRequest) -> IngestOutcome:
    outcome = interpret(request.platform, request.body, str(tenant_id))
    if isinstance(outcome, Rejection):
        return await _dead_letter(token, request, outcome)
    return await _store_event(token, request, outcome)


async def _store_event(token: str, request: WebhookRequest, event: NormalizedEvent) -> IngestOutcome:
    [stored] = await call(
        EVENT_CALL,
        token,
        request.platform,
        event.external_event_id,
        request.webhook_id,
        event.event_type,
        event.customer_key,
        event.channel,
        event.occurred_at,
        event.revenue_cents,
        event.currency,
        json.dumps(event.payload),
        REQUEST_ID.get(),
    )
    event_id = str(stored["event_id"])
    if stored["duplicate"]:
        return IngestOutcome(200, "duplicate", "already received; nothing new stored", {"event_id": event_id})
    return IngestOutcome(202, "accepted", "stored; attribution scheduled", {"event_id": event_id})


async def _dead_letter(token: str, request: WebhookRequest, rejection: Rejection) -> IngestOutcome:
    [row] = await call(
        DEAD_LETTER_CALL,
        token,
        request.platform,
        request.webhook_id,
        rejection.reason,
        json.dumps(rejection.detail),
        hashlib.sha256(request.body).hexdigest(),
        len(request.body),
        json.dumps(rejection.scrubbed) if rejection.scrubbed is not None else None,
    )
    message = "payload is not valid JSON" if rejection.reason == "invalid_json" else "payload does not match the schema"
    extra = {"dead_letter_id": str(row[0]), **rejection.detail}
    return IngestOutcome(rejection.status, rejection.reason, message, extra)
