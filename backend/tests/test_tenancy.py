"""The signed tenant context, on the Python side: the token's shape, the HMAC PostgreSQL recomputes
from the stored pads, key separation from the sealing ring, and the lifetime setting. What the
database does with a token is tested against a real one (integration/test_runtime_role_attacks.py).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

import pytest

from app.core.sealing import KEYS_ENV, KeyRing, SealingError, new_key_ring
from app.core.tenancy import (
    CONTEXT_KEY_LABEL,
    DEFAULT_CONTEXT_TTL_S,
    TTL_ENV,
    TenantContext,
    context_keys,
    context_ttl_s,
    hmac_pads,
    sign_context,
    sign_with,
)

CTX = TenantContext(uuid.uuid4(), "user.with.dots@example")


@pytest.fixture(autouse=True)
def ring(monkeypatch: pytest.MonkeyPatch) -> str:
    text = f"{new_key_ring('next')},{new_key_ring('old')}"
    monkeypatch.setenv(KEYS_ENV, text)
    return text


def sql_mac(pads: tuple[bytes, bytes], message: bytes) -> bytes:
    """What app_current_tenant() computes: sha256(k_opad || sha256(k_ipad || message))."""
    ipad, opad = pads
    return hashlib.sha256(opad + hashlib.sha256(ipad + message).digest()).digest()


def test_the_pads_give_the_same_mac_as_hmac() -> None:
    key = hashlib.sha256(b"any").digest()
    message = b"v1.tenant.user.1.k.payload"
    assert sql_mac(hmac_pads(key), message) == hmac.new(key, message, hashlib.sha256).digest()
    # control: pads of another key do not
    assert sql_mac(hmac_pads(b"\0" * 32), message) != hmac.new(key, message, hashlib.sha256).digest()


def test_a_token_names_the_tenant_the_hex_user_its_expiry_and_the_signing_key() -> None:
    now = 1_900_000_000.0
    token = sign_context(CTX, ttl_s=60, now=now)
    version, tenant, user, expires, kid, mac = token.split(".")
    assert (version, tenant, bytes.fromhex(user).decode(), int(expires), kid) == (
        "v1",
        str(CTX.tenant_id),
        CTX.user_id,
        int(now + 60),
        "next",
    )
    _, keys = context_keys()
    message = token.rsplit(".", 1)[0].encode()
    assert bytes.fromhex(mac) == sql_mac(hmac_pads(keys["next"]), message)


def test_every_key_id_of_the_ring_has_a_context_key_unlike_its_sealing_key(ring: str) -> None:
    current, keys = context_keys()
    parsed = KeyRing.parse(ring)
    assert current == "next" and list(keys) == ["next", "old"]
    assert all(keys[kid] != parsed.raw[kid] for kid in keys)  # derived, never the sealing key itself
    assert keys == parsed.derived(CONTEXT_KEY_LABEL)
    assert parsed.derived(b"another purpose") != keys


def test_a_key_id_with_a_dot_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS_ENV, new_key_ring("k.1"))
    with pytest.raises(SealingError, match="without '\\.'"):
        CTX.token()


def test_no_ring_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEYS_ENV)
    with pytest.raises(SealingError, match=f"{KEYS_ENV} is not set"):
        CTX.as_params()


def test_the_lifetime_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TTL_ENV, raising=False)
    assert context_ttl_s() == DEFAULT_CONTEXT_TTL_S
    monkeypatch.setenv(TTL_ENV, "45")
    expires = int(CTX.token().split(".")[3])
    assert abs(expires - (time.time() + 45)) <= 2


def test_a_token_signed_with_another_key_differs_only_in_its_mac() -> None:
    kid, keys = context_keys()
    ours = sign_with(keys[kid], kid, CTX, expires=2_000_000_000)
    theirs = sign_with(b"x" * 32, kid, CTX, expires=2_000_000_000)
    assert ours.rsplit(".", 1)[0] == theirs.rsplit(".", 1)[0] and ours != theirs
