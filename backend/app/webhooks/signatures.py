"""Standard Webhooks signatures: HMAC-SHA256 over ``id.timestamp.body``, base64, ``v1,`` prefixed.

Headers: ``webhook-id``, ``webhook-timestamp`` (unix seconds), ``webhook-signature`` (one or more
space-separated ``v1,<base64>`` entries). Secrets are ``whsec_<base64 key>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from enum import StrEnum

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format marker, not a secret)


class SignatureFailure(StrEnum):
    MISSING_HEADERS = "missing_signature_headers"
    BAD_TIMESTAMP = "malformed_timestamp"
    OUT_OF_TOLERANCE = "timestamp_out_of_tolerance"
    MISMATCH = "signature_mismatch"


def new_webhook_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secrets_in_force: Iterable[str],
    webhook_id: str | None,
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    now: float,
    tolerance_s: int,
) -> SignatureFailure | None:
    """None when any in-force secret produced any offered signature; otherwise why not."""
    if not webhook_id or not timestamp or not signature_header:
        return SignatureFailure.MISSING_HEADERS
    try:
        sent_at = int(timestamp)
    except ValueError:
        return SignatureFailure.BAD_TIMESTAMP
    if abs(int(now) - sent_at) > tolerance_s:  # integers: a 400-digit timestamp cannot overflow a float here
        return SignatureFailure.OUT_OF_TOLERANCE
    # Compared as bytes: compare_digest refuses non-ASCII text, and headers may carry any latin-1 byte.
    offered = [part.encode("utf-8", "replace") for part in signature_header.split() if part.startswith("v1,")]
    for secret in secrets_in_force:
        expected = sign(secret, webhook_id, sent_at, body).encode()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return None
    return SignatureFailure.MISMATCH
