"""Credentials sealed at rest: webhook signing secrets and payment-platform API keys.

The database holds only AES-256-GCM ciphertexts. The keys live outside it, in the environment
(``SECRETS_ENCRYPTION_KEYS``, generated per topology like the role passwords), so a dump, a backup
or a read-only role alone yields nothing usable.

Key ring: ``kid:base64key[,kid:base64key...]``. The first key seals; any key of the ring opens, so
a key is rotated by putting a new one first, re-sealing (``scripts/ops/reseal_credentials.py``, runbook
in docs/ops/secrets_at_rest.md), then dropping the old one. A sealed value names its key and binds the tenant and the
purpose as associated data: a ciphertext copied into another tenant's row, or from a webhook secret
into an API key column, does not open.

    sealed := "v1:" kid ":" base64(nonce[12] || ciphertext || tag[16])
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import uuid
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEYS_ENV = "SECRETS_ENCRYPTION_KEYS"
VERSION = "v1"
NONCE_BYTES = 12
log = logging.getLogger(__name__)


class SealingError(RuntimeError):
    """No key ring, a malformed one, or a value that does not open with it (never says why in detail)."""


def new_key_ring(kid: str | None = None) -> str:
    """A fresh one-key ring, as ``SECRETS_ENCRYPTION_KEYS`` holds it."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return f"{kid or 'k' + secrets.token_hex(3)}:{key}"


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, AESGCM]
    current: str
    raw: dict[str, bytes] = field(default_factory=dict, repr=False)
    # label -> derived keys: every signed tenant context derives its key, twice per LLM call
    _derived: dict[bytes, dict[str, bytes]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        keys: dict[str, AESGCM] = {}
        raws: dict[str, bytes] = {}
        order: list[str] = []
        for entry in (part.strip() for part in text.split(",") if part.strip()):
            kid, sep, encoded = entry.partition(":")
            try:
                raw = base64.urlsafe_b64decode(encoded)
            except (binascii.Error, ValueError):
                raw = b""
            if not sep or not kid or len(raw) != 32:
                raise SealingError(f"{KEYS_ENV}: each entry must be kid:base64(32 bytes)")
            if kid in keys:  # which of the two would seal, and which open, would be anyone's guess
                raise SealingError(f"{KEYS_ENV}: key id {kid!r} appears twice")
            keys[kid] = AESGCM(raw)
            raws[kid] = raw
            order.append(kid)
        if not order:
            raise SealingError(f"{KEYS_ENV} is empty")
        return cls(keys, order[0], raws)

    def derived(self, label: bytes) -> dict[str, bytes]:
        """One 32-byte key per key id for another purpose (``label``), so that what it signs or
        seals can never be mistaken for this ring's ciphertexts; the ring's order (current first) is kept."""
        if label not in self._derived:
            self._derived[label] = {kid: hmac.new(raw, label, hashlib.sha256).digest() for kid, raw in self.raw.items()}
        return dict(self._derived[label])

    def seal(self, plaintext: str, tenant_id: uuid.UUID | str, purpose: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.keys[self.current].encrypt(nonce, plaintext.encode(), _aad(tenant_id, purpose))
        return f"{VERSION}:{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, value: str, tenant_id: uuid.UUID | str, purpose: str) -> str:
        version, _, rest = value.partition(":")
        kid, _, encoded = rest.partition(":")
        if version != VERSION or kid not in self.keys:
            raise SealingError(f"sealed value with unknown version or key id {kid[:40]!r}")
        try:
            raw = base64.b64decode(encoded, validate=True)
            return self.keys[kid].decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(tenant_id, purpose)).decode()
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise SealingError("sealed value does not open with this key ring") from exc

    @staticmethod
    def key_id_of(value: str) -> str:
        return value.split(":", 2)[1] if value.count(":") >= 2 else ""


def _aad(tenant_id: uuid.UUID | str, purpose: str) -> bytes:
    return f"{purpose}|{tenant_id}".encode()


@lru_cache(maxsize=4)
def _ring_from(text: str) -> KeyRing:
    return KeyRing.parse(text)


def key_ring() -> KeyRing:
    """The process's key ring, from the environment (read each call: tests and tools set it late)."""
    text = os.environ.get(KEYS_ENV, "")
    if not text:
        raise SealingError(f"{KEYS_ENV} is not set: credentials cannot be sealed or opened")
    return _ring_from(text)


# Purposes, bound into every ciphertext: a sealed value opens only for the column it was made for.
PURPOSE_WEBHOOK_SECRET = "webhook_secret"  # noqa: S105 - a label, not a secret
PURPOSE_PLATFORM_API_KEY = "platform_api_key"


def open_or_none(value: str, tenant_id: uuid.UUID | str, purpose: str) -> str | None:
    """The plaintext, or None when the value does not open with this process's ring (its key was
    removed, the value was tampered with or copied from another tenant's row): callers treat the
    credential as absent, so a client sees the answer it would get without one, never a 500."""
    try:
        return key_ring().open(value, tenant_id, purpose)
    except SealingError as exc:
        fingerprint = hashlib.sha256(value.encode()).digest()
        _report_unopened(str(tenant_id), purpose, KeyRing.key_id_of(value)[:40], str(exc), fingerprint)
        return None


@lru_cache(maxsize=1024)
def _report_unopened(tenant_id: str, purpose: str, kid: str, reason: str, _fingerprint: bytes) -> None:
    """Once per value and process (the cache remembers what was reported): a sender retrying
    against a broken secret must not flood the log. Names the row, never the value."""
    log.warning("a sealed %s of tenant %s (key id %r) is treated as absent: %s", purpose, tenant_id, kid, reason)
