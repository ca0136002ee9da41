"""Every bad input class gets its status and exactly its database effect, checked in the database."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.tenants.service import ProvisionedTenant, create_tenant, rotate_webhook_secret
from scripts.topology import Topology

from ..conftest import engine_for, stored_text
from .webhook_client import post_webhook, signed_headers

GOOD_TOUCH = {
    "event_id": "tp-ok",
    "customer_id": "c1",
    "channel": "search",
    "occurred_at": "2026-11-01T10:00:00Z",
}


@pytest.fixture
def pair(runtime_engine: Engine) -> tuple[ProvisionedTenant, ProvisionedTenant]:
    with runtime_engine.begin() as conn:
        a = create_tenant(conn, f"bad-input-{uuid.uuid4().hex[:6]}")
    with runtime_engine.begin() as conn:
        b = create_tenant(conn, f"bad-input-other-{uuid.uuid4().hex[:6]}")
    return a, b


def counts(engine: Engine, tenant: ProvisionedTenant) -> dict[str, int]:
    with tenant_transaction_sync(tenant.context, engine) as conn:
        return {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("attribution_events", "dead_letter_events", "outbox")
        }


def dead_letters(engine: Engine, tenant: ProvisionedTenant) -> list[Any]:
    with tenant_transaction_sync(tenant.context, engine) as conn:
        return list(conn.execute(text("SELECT reason_code, detail, scrubbed_payload FROM dead_letter_events")))


NOTHING = {"attribution_events": 0, "dead_letter_events": 0, "outbox": 0}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = dict(response.json())
    assert body["code"] == code and body["status"] == status and body["detail"]
    return body


def test_bad_signature(api: httpx.Client, runtime_engine: Engine, pair: tuple[ProvisionedTenant, ...]) -> None:
    tenant, _ = pair
    body = json.dumps(GOOD_TOUCH).encode()
    headers = signed_headers(tenant, body)
    headers["webhook-signature"] = "v1," + "A" * 44
    assert_problem(api.post("/webhooks/touchpoints", content=body, headers=headers), 401, "signature_mismatch")
    assert counts(runtime_engine, tenant) == NOTHING


def test_expired_and_future_timestamps(
    api: httpx.Client, runtime_engine: Engine, pair: tuple[ProvisionedTenant, ...]
) -> None:
    tenant, _ = pair
    for skew in (-301, 301):
        response = post_webhook(api, "touchpoints", tenant, GOOD_TOUCH, timestamp=int(time.time()) + skew)
        assert_problem(response, 401, "timestamp_out_of_tolerance")
    assert counts(runtime_engine, tenant) == NOTHING


def test_foreign_tenant_secret_writes_to_neither(
    api: httpx.Client, runtime_engine: Engine, pair: tuple[ProvisionedTenant, ...]
) -> None:
    tenant, other = pair
    response = post_webhook(api, "touchpoints", tenant, GOOD_TOUCH, secret=other.webhook_secret)
    assert_problem(response, 401, "signature_mismatch")
    assert counts(runtime_engine, tenant) == NOTHING
    assert counts(runtime_engine, other) == NOTHING


def test_unknown_or_missing_tenant(api: httpx.Client, pair: tuple[ProvisionedTenant, ...]) -> None:
    tenant, _ = pair
    body = json.dumps(GOOD_TOUCH).encode()
    headers = signed_headers(tenant, body)
    assert_problem(
        api.post("/webhooks/touchpoints", content=body, headers={**headers, "x-tenant-id": str(uuid.uuid4())}),
        401,
        "signature_mismatch",
    )
    assert_problem(
        api.post("/webhooks/touchpoints", content=body, headers={**headers, "x-tenant-id": "x' OR 1=1"}),
        401,
        "missing_tenant",
    )


def test_replay_adds_no_row(api: httpx.Client, runtime_engine: Engine, pair: tuple[ProvisionedTenant, ...]) -> None:
    tenant, _ = pair
    first = post_webhook(api, "touchpoints", tenant, GOOD_TOUCH, webhook_id="msg_replayed")
    assert first.status_code == 202
    replay = post_webhook(api, "touchpoints", tenant, GOOD_TOUCH, webhook_id="msg_replayed")
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert replay.json()["event_id"] == first.json()["event_id"]
    same_event_new_delivery = post_webhook(api, "touchpoints", tenant, GOOD_TOUCH)  # new webhook id, same event id
    assert same_event_new_delivery.status_code == 200
    assert counts(runtime_engine, tenant) == {"attribution_events": 1, "dead_letter_events": 0, "outbox": 1}


def test_rotation_keeps_both_secrets_valid(
    api: httpx.Client, runtime_engine: Engine, pair: tuple[ProvisionedTenant, ...]
) -> None:
    tenant, _ = pair
    with runtime_engine.begin() as conn:
        new_secret = rotate_webhook_secret(conn, tenant.context, grace_s=3600)
    old = post_webhook(api, "touchpoints", tenant, {**GOOD_TOUCH, "event_id": "tp-old"})
    new = post_webhook(api, "touchpoints", tenant, {**GOOD_TOUCH, "event_id": "tp-new"}, secret=new_secret)
    assert (old.status_code, new.status_code) == (202, 202)
    with runtime_engine.begin() as conn:
        rotate_webhook_secret(conn, tenant.context, grace_s=0)  # now the old secrets expire at once
    expired = post_webhook(api, "touchpoints", tenant, {**GOOD_TOUCH, "event_id": "tp-late"})
    assert_problem(expired, 401, "signature_mismatch")


def test_invalid_json_is_dead_lettered(
    api: httpx.Client, runtime_engine: Engine, pair: tuple[ProvisionedTenant, ...]
) -> None:
    tenant, _ = pair
    body = assert_problem(post_webhook(api, "stripe", tenant, b'{"id": "evt_1", '), 400, "invalid_json")
    assert body["dead_letter_id"]
    assert counts(runtime_engine, tenant) == {"attribution_events": 0, "dead_letter_events": 1, "outbox": 0}
    assert [row.reason_code for row in dead_letters(runtime_engine, tenant)] == ["invalid_json"]


@pytest.mark.parametrize(
    ("platform", "payload", "bad_field"),
    [
        (
            "stripe",
            {
                "id": "evt_x",
                "type": "charge.succeeded",
                "created": 1,
                "data": {"object": {"id": "ch", "amount": -5, "currency": "usd"}},
            },
            "data.object.amount",
        ),
        (
            "stripe",
            {
                "id": "evt_x",
                "type": "customer.created",
                "created": 1,
                "data": {"object": {"id": "ch", "amount": 5, "currency": "usd"}},
            },
            "type",
        ),
        (
            "shopify",
            {"id": 1, "total_price": "12.345", "currency": "USD", "created_at": "2026-11-01T00:00:00Z"},
            "total_price",
        ),
        ("touchpoints", {**GOOD_TOUCH, "occurred_at": "2026-11-01T10:00:00"}, "occurred_at"),  # naive time
        ("touchpoints", [GOOD_TOUCH], ""),
    ],
)
def test_schema_invalid_is_dead_lettered(
    api: httpx.Client,
    runtime_engine: Engine,
    pair: tuple[ProvisionedTenant, ...],
    platform: str,
    payload: Any,
    bad_field: str,
) -> None:
    tenant, _ = pair
    body = assert_problem(post_webhook(api, platform, tenant, payload), 422, "schema_invalid")
    assert bad_field in [error["loc"] for error in body["errors"]]
    assert counts(runtime_engine, tenant) == {"attribution_events": 0, "dead_letter_events": 1, "outbox": 0}


def test_oversized_is_refused_without_reading(
    api: httpx.Client, runtime_engine: Engine, pair: tuple[ProvisionedTenant, ...]
) -> None:
    tenant, _ = pair
    payload = {**GOOD_TOUCH, "campaign": "x" * 70_000}
    assert_problem(post_webhook(api, "touchpoints", tenant, payload), 413, "payload_too_large")
    assert counts(runtime_engine, tenant) == NOTHING


def test_unknown_platform(api: httpx.Client, pair: tuple[ProvisionedTenant, ...]) -> None:
    tenant, _ = pair
    assert_problem(post_webhook(api, "myspace", tenant, GOOD_TOUCH), 404, "unknown_platform")


PII = {
    "email": "jane.doe@example.com",
    "phone": "+14155552671",
    "card": "4242 4242 4242 4242",
    "ip": "198.51.100.23",
}
PII_SHAPES = {
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    "ipv4": re.compile(r"(?<![\w.])198\.51\.100\.23(?![\w.])"),
}


@pytest.fixture
def ops_owner_engine(topology: Topology) -> Iterator[Engine]:
    assert topology.dsns is not None
    engine = engine_for(topology.dsns.ops)
    yield engine
    engine.dispose()


def test_pii_never_reaches_any_table(
    api: httpx.Client, runtime_engine: Engine, ops_owner_engine: Engine, pair: tuple[ProvisionedTenant, ...]
) -> None:
    tenant, _ = pair
    laden = {
        "id": "evt_pii",
        "type": "charge.succeeded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": "ch_pii",
                "amount": 1999,
                "currency": "usd",
                "customer": PII["email"],
                "billing_details": {"email": PII["email"], "phone": PII["phone"], "name": "Jane Doe"},
                "description": f"card {PII['card']} from {PII['ip']}, call {PII['phone']}",
            }
        },
        "request": {"ip": PII["ip"], "note": f"contact {PII['email']}"},
    }
    assert post_webhook(api, "stripe", tenant, laden).status_code == 202
    touch = {
        **GOOD_TOUCH,
        "event_id": "tp-pii",
        "customer_id": PII["email"],
        "campaign": f"to {PII['phone']}",
    }
    assert post_webhook(api, "touchpoints", tenant, touch).status_code == 202
    broken = {
        **laden,
        "id": "evt_pii_bad",
        "created": "not-a-time",
    }  # dead-lettered with its scrubbed payload
    assert post_webhook(api, "stripe", tenant, broken).status_code == 422

    # Scan every text, varchar and jsonb column of every table in the database (ops_reader bypasses RLS).
    hits = []
    for where, value in stored_text(ops_owner_engine):
        found = [k for k, v in PII.items() if v in value or v.replace(" ", "") in value]
        found += [k for k, shape in PII_SHAPES.items() if shape.search(value)]
        hits += [f"{where}: {k}" for k in found]
    assert hits == []

    # The pseudonymized customer still joins the touch to the conversion.
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        keys = (
            conn.execute(
                text(
                    "SELECT DISTINCT customer_key FROM attribution_events WHERE external_event_id IN ('evt_pii', 'tp-pii')"
                )
            )
            .scalars()
            .all()
        )
    assert len(keys) == 1 and keys[0].startswith("pii:")


def test_nul_bytes_never_reach_postgres(
    api: httpx.Client, runtime_engine: Engine, pair: tuple[ProvisionedTenant, ...]
) -> None:
    """PostgreSQL cannot store NUL: in a validated field it is a 422; elsewhere it is dropped, never a 500."""
    tenant, _ = pair
    in_field = post_webhook(api, "touchpoints", tenant, {**GOOD_TOUCH, "customer_id": "c\x001"})
    assert_problem(in_field, 422, "schema_invalid")
    elsewhere = post_webhook(api, "touchpoints", tenant, {**GOOD_TOUCH, "event_id": "tp-nul", "note\x00": "a\x00b"})
    assert elsewhere.status_code == 202, elsewhere.text
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        stored = conn.execute(
            text("SELECT payload FROM attribution_events WHERE external_event_id = 'tp-nul'")
        ).scalar_one()
    assert stored["note"] == "ab"
    assert counts(runtime_engine, tenant) == {"attribution_events": 1, "dead_letter_events": 1, "outbox": 1}


STRIPE_CHARGE = {
    "id": "evt_when",
    "type": "charge.succeeded",
    "created": 1,
    "data": {"object": {"id": "ch_when", "amount": 500, "currency": "usd"}},
}


# 10**18 once raised OSError (answered as a database outage), 10**20 OverflowError (a 500).
@pytest.mark.parametrize("created", [10**18, 10**20, 1e20, 2**63])
def test_a_creation_time_beyond_any_calendar_is_dead_lettered(
    api: httpx.Client, runtime_engine: Engine, pair: tuple[ProvisionedTenant, ...], created: float
) -> None:
    tenant, _ = pair
    response = post_webhook(api, "stripe", tenant, {**STRIPE_CHARGE, "created": created})
    body = assert_problem(response, 422, "schema_invalid")
    assert "retry-after" not in response.headers
    assert "created" in [error["loc"] for error in body["errors"]] and body["dead_letter_id"]
    assert counts(runtime_engine, tenant) == {"attribution_events": 0, "dead_letter_events": 1, "outbox": 0}


def touch_with(extra: bytes) -> bytes:
    """A valid touchpoint whose ``extra`` field is ``extra`` exactly as written (json.dumps cannot
    write some of these), beside an email that the dead letter must not keep."""
    template = json.dumps({**GOOD_TOUCH, "note": f"from {PII['email']}", "extra": "@"}).encode()
    return template.replace(b'"@"', extra)


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        (touch_with(b"NaN"), "extra"),
        (touch_with(b"Infinity"), "extra"),
        (touch_with(b"[1, -Infinity]"), "extra.1"),
        (touch_with(b"1e400"), "extra"),  # a float Python reads as infinity
        (touch_with(b'"a\\ud800b"'), "extra"),  # a lone surrogate, as a JSON escape
        (touch_with(b'"a\xed\xa0\x80b"'), "extra"),  # ... and as raw bytes, which Python's json decodes
        (touch_with(b'{"\\udc00": 1}'), "extra.\\udc00"),  # ... in a key
        (json.dumps({**GOOD_TOUCH, "occurred_at": "0001-01-01T00:00:00+01:00"}).encode(), "occurred_at"),
        (json.dumps({**GOOD_TOUCH, "occurred_at": "9999-12-31T23:59:59-01:00"}).encode(), "occurred_at"),
    ],
    ids=[
        "nan",
        "infinity",
        "minus-infinity",
        "1e400",
        "escaped-surrogate",
        "raw-surrogate",
        "surrogate-key",
        "year-1",
        "year-9999",
    ],
)
def test_values_postgres_cannot_store_are_dead_lettered(
    api: httpx.Client, runtime_engine: Engine, pair: tuple[ProvisionedTenant, ...], body: bytes, bad_field: str
) -> None:
    tenant, _ = pair
    problem = assert_problem(post_webhook(api, "touchpoints", tenant, body), 422, "schema_invalid")
    assert bad_field in [error["loc"] for error in problem["errors"]], problem
    assert problem["dead_letter_id"]
    assert counts(runtime_engine, tenant) == {"attribution_events": 0, "dead_letter_events": 1, "outbox": 0}
    [letter] = dead_letters(runtime_engine, tenant)
    assert letter.reason_code == "schema_invalid"
    assert letter.scrubbed_payload["event_id"] == GOOD_TOUCH["event_id"]  # kept, in a form PostgreSQL holds
    assert PII["email"] not in json.dumps(letter.scrubbed_payload)


def test_pii_sent_as_numbers_is_never_stored(
    api: httpx.Client, runtime_engine: Engine, pair: tuple[ProvisionedTenant, ...]
) -> None:
    tenant, _ = pair
    card, phone = 4111111111111111, 14155550147
    numbers = {"cards": [card], "contact": {"tel": phone}, "amount_cents": 1999}
    accepted = post_webhook(api, "touchpoints", tenant, {**GOOD_TOUCH, "event_id": "tp-numbers", **numbers})
    assert accepted.status_code == 202, accepted.text
    refused = post_webhook(api, "touchpoints", tenant, {**GOOD_TOUCH, "channel": "Not A Channel", **numbers})
    assert_problem(refused, 422, "schema_invalid")
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        stored = conn.execute(text("SELECT payload FROM attribution_events")).scalar_one()
        kept = conn.execute(text("SELECT scrubbed_payload FROM dead_letter_events")).scalar_one()
    for row in (stored, kept):
        assert str(card) not in json.dumps(row) and str(phone) not in json.dumps(row), row
        assert row["amount_cents"] == 1999  # an ordinary number stays as it was
