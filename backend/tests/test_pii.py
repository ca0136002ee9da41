"""PII scrubbing: the four kinds go, and ordinary values (dates, amounts, ids) stay intact."""

from __future__ import annotations

import json

import pytest

from app.webhooks.pii import contains_pii, pseudonymize, scrub, scrub_text

TENANT = "00000000-0000-0000-0000-000000000001"


@pytest.mark.parametrize(
    "raw",
    [
        "jane.doe+ads@example.co.uk",
        "+14155552671",
        "+44 20 7946 0958",
        "(415) 555-2671",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "203.0.113.77",
        "2001:db8:85a3::8a2e:370:7334",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    ],
)
def test_pii_shapes_are_redacted_inside_text(raw: str) -> None:
    text = f"note: customer said {raw} yesterday"
    cleaned = scrub_text(text)
    assert raw not in cleaned
    assert "[redacted:" in cleaned
    assert contains_pii(text) and not contains_pii(cleaned)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-23T10:00:00Z",
        "2026-11-23",
        "evt_1NQ2x9",
        "order 1001",
        "12.50",
        "1234567890123",  # not Luhn-valid
        "ch_3MmlLrLkdIwHu7ix0snN0B15",
        "v1.2.3.4beta",
        "10:00:00",
    ],
)
def test_ordinary_values_survive(value: str) -> None:
    assert scrub_text(value) == value


def test_known_pii_fields_are_pseudonymized_consistently() -> None:
    document = {
        "email": "A@Example.com",
        "nested": {"billing_details": {"name": "Ann"}},
        "amount": 1250,
        "items": [{"note": "call +14155552671"}],
    }
    cleaned = scrub(document, TENANT)
    assert cleaned["email"] == pseudonymize(TENANT, "a@example.com")  # case-insensitive, joinable
    assert cleaned["amount"] == 1250
    assert "+14155552671" not in json.dumps(cleaned)
    assert "Ann" not in json.dumps(cleaned)
    assert scrub(document, "another-tenant")["email"] != cleaned["email"]  # pseudonyms are tenant-scoped


@pytest.mark.parametrize(
    ("document", "raw"),
    [
        ({"cards": [4111111111111111]}, "4111111111111111"),
        ({"pan_hint": 5500000000000004}, "5500000000000004"),
        ({"contact": {"tel": 14155550147}}, "14155550147"),
        ({"notes": [{"callback": 14155550147}]}, "14155550147"),  # no telling key: the digits decide
        ({"card_as_float": 4111111111111111.0}, "4111111111111111"),
        ({"fax": 442079460958}, "442079460958"),  # a phone key whatever the country
    ],
)
def test_pii_sent_as_json_numbers_is_scrubbed(document: dict[str, object], raw: str) -> None:
    cleaned = json.dumps(scrub(document, TENANT))
    assert raw not in cleaned


def test_numbers_are_judged_as_their_digits_would_be_in_text() -> None:
    """A phone number has no separators when it is a JSON number, nor often when it is a bare string:
    both forms of one customer id must scrub (and so pseudonymize and join) alike."""
    assert scrub_text("14155550147") == "[redacted:phone]"
    assert contains_pii(str(14155550147)) and contains_pii(str(4111111111111111))
    assert scrub({"id": 14155550147}, TENANT) == {"id": "[redacted:phone]"}


@pytest.mark.parametrize(
    "value",
    [
        1999,  # cents
        1_700_000_000,  # unix seconds
        1_700_000_000_000,  # unix milliseconds, not Luhn-valid
        450789469,  # a platform id
        10_000_000_000,  # eleven digits, but not a North American number
        4111111111111112,  # sixteen digits, not Luhn-valid
        True,
        12.5,
    ],
)
def test_ordinary_numbers_survive(value: object) -> None:
    assert scrub({"value": value, "items": [value]}, TENANT) == {"value": value, "items": [value]}
