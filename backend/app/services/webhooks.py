"""Webhook ingestion: authenticate, validate, scrub, and persist an event with its outbox row.

Everything after authentication happens in one tenant transaction: the event and the outbox row
that schedules its attribution commit together, or neither does. A payload that fails after the
tenant is authenticated is kept as a dead letter (scrubbed); an unauthenticated one writes nothing,
so no caller can fill another tenant's tables.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.db import tenant_transaction
from app.core.settings import Settings
from app.core.tenancy import TenantContext
from app.services.pii import scrub
from app.services.webhook_payloads import PLATFORMS, NormalizedEvent, schema_errors
from app.services.webhook_signatures import verify

TENANT_HEADER = "x-tenant-id"

SECRETS_SQL = text("SELECT secret FROM webhook_secrets WHERE expires_at IS NULL OR expires_at > now()")
# The event and the outbox row that schedules its attribution, in one statement (one round trip);
# a duplicate inserts neither and returns no row.
INSERT_EVENT_SQL = text(
    """
    WITH event AS (
        INSERT INTO attribution_events (tenant_id, platform, external_event_id, webhook_id, event_type,
                                        customer_key, channel, occurred_at, revenue_cents, currency, payload)
        VALUES (:tenant_id, :platform, :external_event_id, :webhook_id, :event_type, :customer_key, :channel,
                :occurred_at, :revenue_cents, :currency, CAST(:payload AS jsonb))
        ON CONFLICT DO NOTHING
        RETURNING id, tenant_id),
    scheduled AS (INSERT INTO outbox (tenant_id, kind) SELECT tenant_id, 'attribution_recompute' FROM event)
    SELECT id FROM event
    """
)
EXISTING_EVENT_SQL = text(
    """
    SELECT id FROM attribution_events
    WHERE webhook_id = :webhook_id OR (platform = :platform AND external_event_id = :external_event_id)
    LIMIT 1
    """
)
INSERT_DEAD_LETTER_SQL = text(
    """
    INSERT INTO dead_letter_events (tenant_id, platform, webhook_id, reason_code, detail, payload_sha256,
                                    payload_bytes, scrubbed_payload)
    VALUES (:tenant_id, :platform, :webhook_id, :reason_code, CAST(:detail AS jsonb), :sha, :size,
            CAST(:scrubbed AS jsonb))
    RETURNING id
    """
)


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

    async with tenant_transaction(TenantContext(tenant_id, "webhook")) as conn:
        secrets = [row.secret for row in await conn.execute(SECRETS_SQL)]
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
        return await _persist(conn, tenant_id, request)


async def _persist(conn: AsyncConnection, tenant_id: uuid.UUID, request: WebhookRequest) -> IngestOutcome:
    try:
        document = json.loads(request.body)
    except (ValueError, RecursionError):
        return await _dead_letter(conn, tenant_id, request, 400, "invalid_json", {}, None)
    if not isinstance(document, dict):
        detail = {"errors": [{"loc": "", "type": "object_type", "msg": "payload must be a JSON object"}]}
        return await _dead_letter(conn, tenant_id, request, 422, "schema_invalid", detail, None)
    try:
        event = PLATFORMS[request.platform](document, str(tenant_id))
    except ValidationError as exc:
        scrubbed = scrub(document, str(tenant_id))
        detail = {"errors": schema_errors(exc)}
        return await _dead_letter(conn, tenant_id, request, 422, "schema_invalid", detail, scrubbed)
    except (ValueError, RecursionError) as exc:
        return await _dead_letter(conn, tenant_id, request, 422, "schema_invalid", {"error": str(exc)[:200]}, None)
    return await _store_event(conn, tenant_id, request, event)


async def _store_event(
    conn: AsyncConnection, tenant_id: uuid.UUID, request: WebhookRequest, event: NormalizedEvent
) -> IngestOutcome:
    params = {
        "tenant_id": tenant_id,
        "platform": request.platform,
        "external_event_id": event.external_event_id,
        "webhook_id": request.webhook_id,
        "event_type": event.event_type,
        "customer_key": event.customer_key,
        "channel": event.channel,
        "occurred_at": event.occurred_at,
        "revenue_cents": event.revenue_cents,
        "currency": event.currency,
        "payload": json.dumps(event.payload),
    }
    inserted = (await conn.execute(INSERT_EVENT_SQL, params)).scalar_one_or_none()
    if inserted is None:
        existing = (await conn.execute(EXISTING_EVENT_SQL, params)).scalar_one_or_none()
        return IngestOutcome(200, "duplicate", "already received; nothing new stored", {"event_id": str(existing)})
    return IngestOutcome(202, "accepted", "stored; attribution scheduled", {"event_id": str(inserted)})


async def _dead_letter(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    request: WebhookRequest,
    status: int,
    reason: str,
    detail: dict[str, Any],
    scrubbed: dict[str, Any] | None,
) -> IngestOutcome:
    dead_letter_id = (
        await conn.execute(
            INSERT_DEAD_LETTER_SQL,
            {
                "tenant_id": tenant_id,
                "platform": request.platform,
                "webhook_id": request.webhook_id,
                "reason_code": reason,
                "detail": json.dumps(detail),
                "sha": hashlib.sha256(request.body).hexdigest(),
                "size": len(request.body),
                "scrubbed": json.dumps(scrubbed) if scrubbed is not None else None,
            },
        )
    ).scalar_one()
    message = "payload is not valid JSON" if reason == "invalid_json" else "payload does not match the schema"
    return IngestOutcome(status, reason, message, {"dead_letter_id": str(dead_letter_id), **detail})
