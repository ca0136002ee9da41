"""PII removal before anything is stored: emails, phone numbers, card numbers and IP addresses.

Known PII fields are replaced by a tenant-keyed hash (still joinable, never reversible);
any other string is searched for PII shapes, which are redacted in place. A JSON number is judged
by its digits as a string would be: a card or phone number sent as a number is still PII.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from typing import Any

PII_KEYS = frozenset(
    {
        "email",
        "email_address",
        "phone",
        "phone_number",
        "mobile",
        "ip",
        "ip_address",
        "client_ip",
        "card",
        "card_number",
        "pan",
        "name",
        "first_name",
        "last_name",
        "full_name",
        "address",
        "address1",
        "address2",
        "street",
        "billing_details",
        "shipping",
        "shipping_address",
        "billing_address",
        "browser_ip",
        "tel",
        "telephone",
        "phones",
        "phone_numbers",
        "mobile_number",
        "mobile_phone",
        "cell",
        "cellphone",
        "cell_phone",
        "fax",
        "msisdn",
    }
)

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE = re.compile(
    r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{3,4}[\s.-]\d{3,4}(?:[\s.-]\d{2,4})?(?![\w.])"
)
PHONE_E164 = re.compile(r"(?<![\w.])\+\d{8,15}(?![\w.])")
# A North American number in E.164 without its "+", the only way a JSON number can carry one. Ten
# digit forms are left alone: unix times in seconds look just like them.
PHONE_NANP = re.compile(r"(?<![\w.+])1[2-9]\d{2}[2-9]\d{6}(?![\w.])")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
# Candidates only: every match is confirmed by the ipaddress module before it is redacted.
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def pseudonymize(tenant_id: str, value: str) -> str:
    """A stable tenant-scoped pseudonym: the same customer joins across events, the value never returns."""
    digest = hashlib.sha256(f"{tenant_id}:{value.strip().lower()}".encode()).hexdigest()
    return f"pii:{digest[:24]}"


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[redacted:card]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group()


def _ip(match: re.Match[str]) -> str:
    try:
        ipaddress.ip_address(match.group())
    except ValueError:
        return match.group()
    return "[redacted:ip]"


def scrub_text(text: str) -> str:
    text = text.replace("\x00", "")  # PostgreSQL text cannot hold NUL
    text = EMAIL.sub("[redacted:email]", text)
    text = CARD.sub(_card, text)
    text = IPV4.sub(_ip, text)
    text = IPV6.sub(_ip, text)
    text = PHONE_E164.sub("[redacted:phone]", text)
    text = PHONE_NANP.sub("[redacted:phone]", text)
    return PHONE.sub("[redacted:phone]", text)


# Only a number of 11 to 19 digits can be a card (13-19) or a phone number without a "+" (11).
PII_NUMBERS = range(10**10, 10**19)


def scrub_number(value: int | float) -> int | float | str:
    """The number, or what its digits redact to; a float counts only when it is a whole number."""
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return value
    if int(abs(value)) not in PII_NUMBERS:
        return value
    digits = str(int(value))
    cleaned = scrub_text(digits)
    return value if cleaned == digits else cleaned


def scrub(value: Any, tenant_id: str) -> Any:
    """A copy of a JSON value with PII fields pseudonymized and PII shapes redacted everywhere."""
    if isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            safe_key = scrub_text(str(key))
            if str(key).lower() in PII_KEYS and item is not None:
                cleaned[safe_key] = pseudonymize(tenant_id, str(item)) if isinstance(item, str | int) else "[redacted]"
            else:
                cleaned[safe_key] = scrub(item, tenant_id)
        return cleaned
    if isinstance(value, list):
        return [scrub(item, tenant_id) for item in value]
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return scrub_number(value)
    return value


def contains_pii(text: str) -> bool:
    """True when ``text`` still holds a PII shape (used by tests and the ingestion PII check)."""
    return scrub_text(text) != text
