"""API keys: generated once, shown once, stored only as a SHA-256 digest.

Keys carry 256 bits of randomness, so a fast digest is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import secrets

API_KEY_PREFIX = "ak_"


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_bearer(header_value: str | None) -> str | None:
    """The key from an ``Authorization: Bearer <key>`` header, or None when absent or malformed."""
    if not header_value:
        return None
    scheme, _, token = header_value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(API_KEY_PREFIX) or len(token) > 200:
        return None
    return token
