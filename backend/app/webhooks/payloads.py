"""Payload schemas per platform, and their mapping to one normalized attribution event.

``interpret`` is the whole pure part of the intake: a body in, a normalized event or a rejection
out. Whatever either holds is storable, because a value PostgreSQL refuses once the tenant is known
would be a rejection without its dead letter.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from app.webhooks.pii import contains_pii, pseudonymize, scrub, scrub_text

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\w.:-]+$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]
Channel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]  # PostgreSQL text cannot hold NUL
MAX_CENTS = 10**13  # 100 billion in major units: anything larger is a broken payload, not revenue
# Python's datetime spans the years 1-9999 (PostgreSQL's timestamptz far more), and an instant within
# a day of either end overflows when shown in some time zone, as a reader whose session is not in
# UTC would see it: a day's margin is kept at both ends.
EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
LATEST_UNIX_S = int((LATEST - datetime.fromtimestamp(0, UTC)).total_seconds())


def _on_the_calendar(value: datetime) -> datetime:
    try:
        within = EARLIEST <= value.astimezone(UTC) <= LATEST
    except OverflowError:  # year 1 or 9999 with an offset that carries it past the end
        within = False
    if not within:
        raise ValueError("timestamp is outside the range that can be stored")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_on_the_calendar)]


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
    created: int = Field(gt=0, le=LATEST_UNIX_S)
    data: StripeData


class ShopifyCustomer(_Schema):
    id: int | ExternalId


class ShopifyOrder(_Schema):
    id: int | ExternalId
    total_price: Annotated[str, StringConstraints(pattern=r"^\d{1,11}(\.\d{1,2})?$")]
    currency: Currency
    created_at: Instant
    customer: ShopifyCustomer | None = None


class Touchpoint(_Schema):
    event_id: ExternalId
    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00]+$")]
    channel: Channel
    occurred_at: Instant
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


MAX_ERRORS = 20


def schema_errors(error: ValidationError) -> list[dict[str, str]]:
    """Validation errors without input values (they may hold PII)."""
    return [
        {"loc": ".".join(str(part) for part in err["loc"]), "type": err["type"], "msg": err["msg"]}
        for err in error.errors(include_input=False, include_url=False)
    ][:MAX_ERRORS]


# Python's json reads NaN, Infinity and -Infinity, turns numbers beyond a double (1e400) into
# infinities, and lets lone UTF-16 surrogates through (as \ud800 escapes, and as raw bytes, which it
# decodes with surrogatepass). PostgreSQL's jsonb takes none of them, nor its text columns a surrogate.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_FINITE = {"loc": "", "type": "number_not_finite", "msg": "number is NaN, infinite, or beyond a double"}
SURROGATE = {"loc": "", "type": "lone_surrogate", "msg": "text holds a lone UTF-16 surrogate (not Unicode text)"}


def escaped(text: str) -> str:
    return LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def unstorable(document: Any) -> list[dict[str, str]]:
    """Where a parsed document holds a value PostgreSQL cannot store. Keys in the locations are
    scrubbed as any stored text is (a key may be an email address)."""
    found: list[dict[str, str]] = []
    pending: list[tuple[tuple[str, ...], Any]] = [((), document)]  # a stack: nesting is the sender's choice
    while pending and len(found) < MAX_ERRORS:
        path, value = pending.pop()
        if isinstance(value, dict):
            for key, item in reversed(value.items()):
                place = (*path, scrub_text(escaped(key)))
                if LONE_SURROGATE.search(key):
                    found.append({**SURROGATE, "loc": ".".join(place)})
                pending.append((place, item))
        elif isinstance(value, list):
            pending.extend(((*path, str(index)), item) for index, item in reversed(list(enumerate(value))))
        elif isinstance(value, float) and not math.isfinite(value):
            found.append({**NOT_FINITE, "loc": ".".join(path)})
        elif isinstance(value, str) and LONE_SURROGATE.search(value):
            found.append({**SURROGATE, "loc": ".".join(path)})
    return found[:MAX_ERRORS]


def storable(value: Any) -> Any:
    """A copy PostgreSQL can store: non-finite numbers spelled as JSON's extensions spell them, lone
    surrogates written out as escapes."""
    if isinstance(value, dict):
        return {escaped(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)  # NaN, Infinity, -Infinity
    if isinstance(value, str):
        return escaped(value)
    return value


@dataclass(frozen=True)
class Rejection:
    status: int
    reason: str  # invalid_json | schema_invalid
    detail: dict[str, Any]
    scrubbed: dict[str, Any] | None  # what the dead letter keeps of the payload: PII removed, storable


NOT_AN_OBJECT = {"loc": "", "type": "object_type", "msg": "payload must be a JSON object"}


# Only a body with one of these can hold what ``unstorable`` looks for, so most bodies skip the walk:
# a \uD800-\uDFFF escape (a valid surrogate pair matches too, and is then walked for nothing) or the
# raw bytes of a lone surrogate, which valid UTF-8 never contains. Non-finite numbers are caught
# while parsing (``_Parse``).
SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


class _Parse:
    """json.loads hooks that note a NaN, an Infinity, or a number beyond a double as they are read."""

    def __init__(self) -> None:
        self.not_finite = False

    def number(self, text: str) -> float:
        value = float(text)
        self.not_finite |= not math.isfinite(value)
        return value

    def constant(self, name: str) -> float:
        self.not_finite = True
        return float(name)


def interpret(platform: str, body: bytes, tenant_id: str) -> NormalizedEvent | Rejection:
    """The normalized event a signed body holds, or why it is refused and what a dead letter keeps."""
    parse = _Parse()
    try:
        document = json.loads(body, parse_float=parse.number, parse_constant=parse.constant)
    except (ValueError, RecursionError):
        return Rejection(400, "invalid_json", {}, None)
    if not isinstance(document, dict):
        return Rejection(422, "schema_invalid", {"errors": [NOT_AN_OBJECT]}, None)
    try:
        suspect = parse.not_finite or SURROGATE_HINT.search(body) is not None
        errors = unstorable(document) if suspect else []
        if errors:
            return Rejection(422, "schema_invalid", {"errors": errors}, scrub(storable(document), tenant_id))
        try:
            return PLATFORMS[platform](document, tenant_id)
        except ValidationError as exc:
            return Rejection(422, "schema_invalid", {"errors": schema_errors(exc)}, scrub(document, tenant_id))
    except (ValueError, RecursionError) as exc:  # a parser's own ValueError; nesting deeper than scrub recurses
        return Rejection(422, "schema_invalid", {"error": escaped(scrub_text(str(exc)[:200]))}, None)
