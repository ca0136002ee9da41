"""Payload schemas per platform, and their mapping to one normalized attribution event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from app.services.pii import contains_pii, pseudonymize, scrub

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\w.:-]+$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]
Channel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]  # PostgreSQL text cannot hold NUL
MAX_CENTS = 10**13  # 100 billion in major units: anything larger is a broken payload, not revenue


class _Schema(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class StripeObject(_Schema):
    id: ExternalId
    amount: int = Field(ge=0, lt=MAX_CENTS)
    currency: Currency
    customer: Text | None = Field(default=None, max_length=255)


class StripeData(_Schema):
    object: StripeObject


class StripeEvent(_Schema):
    id: ExternalId
    type: Annotated[str, StringConstraints(pattern=r"^(charge\.succeeded|payment_intent\.succeeded|invoice\.paid)$")]
    created: int = Field(gt=0)
    data: StripeData


class ShopifyCustomer(_Schema):
    id: int | ExternalId


class ShopifyOrder(_Schema):
    id: int | ExternalId
    total_price: Annotated[str, StringConstraints(pattern=r"^\d{1,11}(\.\d{1,2})?$")]
    currency: Currency
    created_at: AwareDatetime
    customer: ShopifyCustomer | None = None


class Touchpoint(_Schema):
    event_id: ExternalId
    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00]+$")]
    channel: Channel
    occurred_at: AwareDatetime
    campaign: Text | None = Field(default=None, max_length=255)


@dataclass(frozen=True)
class NormalizedEvent:
    external_event_id: str
    event_type: str  # touchpoint | conversion
    customer_key: str | None
    channel: str | None
    occurred_at: datetime
    revenue_cents: int | None
    currency: str | None
    payload: dict[str, Any]  # scrubbed


def customer_key(tenant_id: str, raw: object) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    return pseudonymize(tenant_id, text) if contains_pii(text) else text


def _stripe(document: dict[str, Any], tenant_id: str) -> NormalizedEvent:
    event = StripeEvent.model_validate(document)
    charge = event.data.object
    return NormalizedEvent(
        external_event_id=event.id,
        event_type="conversion",
        customer_key=customer_key(tenant_id, charge.customer),
        channel=None,
        occurred_at=datetime.fromtimestamp(event.created, UTC),
        revenue_cents=charge.amount,
        currency=charge.currency.upper(),
        payload=scrub(document, tenant_id),
    )


def _shopify(document: dict[str, Any], tenant_id: str) -> NormalizedEvent:
    order = ShopifyOrder.model_validate(document)
    try:
        cents = int((Decimal(order.total_price) * 100).to_integral_exact())
    except InvalidOperation as exc:  # the pattern admits only exact 2-decimal amounts; belt and braces
        raise ValueError("total_price is not an exact amount") from exc
    return NormalizedEvent(
        external_event_id=str(order.id),
        event_type="conversion",
        customer_key=customer_key(tenant_id, order.customer.id if order.customer else None),
        channel=None,
        occurred_at=order.created_at,
        revenue_cents=cents,
        currency=order.currency.upper(),
        payload=scrub(document, tenant_id),
    )


def _touchpoint(document: dict[str, Any], tenant_id: str) -> NormalizedEvent:
    touch = Touchpoint.model_validate(document)
    return NormalizedEvent(
        external_event_id=touch.event_id,
        event_type="touchpoint",
        customer_key=customer_key(tenant_id, touch.customer_id),
        channel=touch.channel,
        occurred_at=touch.occurred_at,
        revenue_cents=None,
        currency=None,
        payload=scrub(document, tenant_id),
    )


PLATFORMS: dict[str, Callable[[dict[str, Any], str], NormalizedEvent]] = {
    "stripe": _stripe,
    "shopify": _shopify,
    "touchpoints": _touchpoint,
}


def schema_errors(error: ValidationError) -> list[dict[str, str]]:
    """Validation errors without input values (they may hold PII)."""
    return [
        {"loc": ".".join(str(part) for part in err["loc"]), "type": err["type"], "msg": err["msg"]}
        for err in error.errors(include_input=False, include_url=False)
    ][:20]
