"""Property-based attacks on the webhook intake's pure parts: the signature check and the payload
parsers. Whatever arrives, they answer with a verdict or a validation error, never an exception the
api would turn into a 500; a valid signature survives, and any tampering is refused.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.webhooks.payloads import PLATFORMS, Rejection, interpret
from app.webhooks.pii import scrub
from app.webhooks.signatures import SignatureFailure, new_webhook_secret, sign, verify

SECRET = new_webhook_secret()
OTHER_SECRET = new_webhook_secret()
NOW = time.time()
TOLERANCE_S = 300
EXAMPLES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Headers reach us as latin-1 text (HTTP allows any byte 0x20-0xFF), so that is what we generate.
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300)
bodies = st.binary(max_size=2_000)
webhook_ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80)


@EXAMPLES
@given(webhook_id=webhook_ids, body=bodies, skew=st.integers(-TOLERANCE_S, TOLERANCE_S))
def test_a_valid_signature_verifies(webhook_id: str, body: bytes, skew: int) -> None:
    timestamp = int(NOW) + skew
    signature = sign(SECRET, webhook_id, timestamp, body)
    assert (
        verify([OTHER_SECRET, SECRET], webhook_id, str(timestamp), f"v0,junk {signature}", body, NOW, TOLERANCE_S)
        is None
    )


@EXAMPLES
@given(webhook_id=webhook_ids, body=bodies, data=st.data())
def test_any_tampering_is_refused(webhook_id: str, body: bytes, data: st.DataObject) -> None:
    timestamp = int(NOW)
    signature = sign(SECRET, webhook_id, timestamp, body)
    part = data.draw(st.sampled_from(["body", "id", "timestamp", "secret"]))
    if part == "body":
        tampered = data.draw(bodies.filter(lambda other: other != body))
        verdict = verify([SECRET], webhook_id, str(timestamp), signature, tampered, NOW, TOLERANCE_S)
    elif part == "id":
        other_id = data.draw(webhook_ids.filter(lambda other: other != webhook_id))
        verdict = verify([SECRET], other_id, str(timestamp), signature, body, NOW, TOLERANCE_S)
    elif part == "timestamp":
        verdict = verify([SECRET], webhook_id, str(timestamp + 1), signature, body, NOW, TOLERANCE_S)
    else:
        verdict = verify([OTHER_SECRET], webhook_id, str(timestamp), signature, body, NOW, TOLERANCE_S)
    assert verdict is SignatureFailure.MISMATCH


@EXAMPLES
@given(signature=header_text, body=bodies)
def test_any_bytes_in_the_signature_header_are_a_mismatch(signature: str, body: bytes) -> None:
    """Found by this suite: a non-ASCII signature once raised TypeError (a 500) instead of a 401."""
    verdict = verify([SECRET], "msg_1", str(int(NOW)), f"v1,{signature}", body, NOW, TOLERANCE_S)
    assert verdict is SignatureFailure.MISMATCH


@EXAMPLES
@given(
    webhook_id=st.one_of(st.none(), header_text),
    # "1" + 400 zeros once raised OverflowError (a 500) comparing it with the float clock.
    timestamp=st.one_of(st.none(), header_text, st.integers().map(str), st.just("1" + "0" * 400)),
    signature=st.one_of(st.none(), header_text, header_text.map(lambda t: f"v1,{t}")),
    body=bodies,
)
def test_garbage_headers_get_a_verdict_never_an_exception(
    webhook_id: str | None, timestamp: str | None, signature: str | None, body: bytes
) -> None:
    verdict = verify([SECRET], webhook_id, timestamp, signature, body, NOW, TOLERANCE_S)
    assert isinstance(verdict, SignatureFailure)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
near_valid_touchpoint = st.fixed_dictionaries(
    {
        "event_id": st.one_of(st.text(max_size=300), st.integers()),
        "customer_id": st.one_of(st.text(max_size=300), st.emails(), st.none()),
        "channel": st.one_of(st.sampled_from(["email", "paid_search"]), st.text(max_size=70)),
        "occurred_at": st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=40), st.integers()),
    },
    optional={"campaign": json_values, "extra": json_values},
)


@EXAMPLES
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
@given(document=st.one_of(st.dictionaries(st.text(max_size=20), json_values, max_size=8), near_valid_touchpoint))
def test_parsers_accept_or_reject_cleanly(platform: str, document: dict[str, Any]) -> None:
    try:
        event = PLATFORMS[platform](document, "00000000-0000-0000-0000-000000000001")
    except (ValidationError, ValueError, RecursionError):
        return  # what the intake turns into a 422 dead letter
    assert event.external_event_id and event.event_type in ("touchpoint", "conversion")
    json.dumps(event.payload)  # what is stored is always serializable


@EXAMPLES
@given(local=st.from_regex(r"[a-z][a-z0-9]{2,12}", fullmatch=True), filler=json_values)
def test_scrubbed_payloads_hold_no_email(local: str, filler: Any) -> None:
    email = f"{local}@example.org"
    document = {"note": f"contact {email} now", "nested": [{"email": email}, filler], "customer_id": email}
    assert email not in json.dumps(scrub(document, "tenant"))


# What Python's json reads but PostgreSQL cannot store: NaN and infinities, and lone surrogates
# (as escapes, or as raw bytes, which json.loads decodes with surrogatepass).
hostile_text = st.text(alphabet=st.characters(max_codepoint=0x7F) | st.characters(categories=["Cs"]), max_size=12)
hostile_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=25,
)
extreme_times = st.one_of(
    st.sampled_from(
        ["0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z"]
    ),
    st.datetimes(timezones=st.sampled_from([timezone(timedelta(hours=h)) for h in (-14, 0, 14)])).map(
        lambda d: d.isoformat()
    ),
)
hostile_documents = st.one_of(
    st.dictionaries(hostile_text, hostile_values, max_size=6),
    st.fixed_dictionaries(
        {
            "event_id": st.just("tp_1"),
            "customer_id": hostile_text,
            "channel": st.just("email"),
            "occurred_at": extreme_times,
        },
        optional={"extra": hostile_values},
    ),
    st.fixed_dictionaries(
        {
            "id": st.just("evt_1"),
            "type": st.just("charge.succeeded"),
            "created": st.one_of(st.integers(), st.floats(), st.sampled_from([10**18, 1e20, 253402300799])),
            "data": st.just({"object": {"id": "ch_1", "amount": 100, "currency": "usd", "customer": "cus_1"}}),
        },
        optional={"extra": hostile_values},
    ),
    st.fixed_dictionaries(
        {"id": st.integers(), "total_price": st.just("1.00"), "currency": st.just("usd"), "created_at": extreme_times},
        optional={"customer": st.fixed_dictionaries({"id": hostile_text}), "extra": hostile_values},
    ),
)


def assert_storable(value: Any) -> None:
    """Holds only what jsonb and text columns take: finite numbers, UTF-8 text without NUL."""
    if isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, str):
        assert "\x00" not in value
        value.encode("utf-8")  # raises on a lone surrogate
    elif isinstance(value, list):
        for item in value:
            assert_storable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_storable(key)
            assert_storable(item)


@EXAMPLES
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
@given(document=hostile_documents, raw_surrogates=st.booleans())
def test_whatever_is_kept_postgres_can_store(platform: str, document: dict[str, Any], raw_surrogates: bool) -> None:
    """An event or a dead letter, never a value the database refuses (a 4xx without a dead letter)."""
    body = json.dumps(document, ensure_ascii=not raw_surrogates).encode("utf-8", "surrogatepass")
    outcome = interpret(platform, body, "00000000-0000-0000-0000-000000000001")
    if isinstance(outcome, Rejection):
        assert 400 <= outcome.status < 500
        assert_storable(outcome.detail)
        assert_storable(outcome.scrubbed)
        return
    assert_storable(outcome.payload)
    assert_storable([outcome.external_event_id, outcome.customer_key, outcome.channel, outcome.currency])
    assert outcome.occurred_at.astimezone(UTC).tzinfo is UTC  # raises OverflowError outside the calendar
