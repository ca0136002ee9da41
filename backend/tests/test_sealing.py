"""The key ring that seals credentials at rest: parsing, sealing, and everything that must not open."""

from __future__ import annotations

import ast
import base64
import logging
import re
import uuid

import pytest

from app.core.sealing import (
    KEYS_ENV,
    PURPOSE_PLATFORM_API_KEY,
    PURPOSE_WEBHOOK_SECRET,
    KeyRing,
    SealingError,
    _report_unopened,
    key_ring,
    new_key_ring,
    open_or_none,
)
from app.webhooks.signatures import new_webhook_secret
from scripts.harness import REPO_ROOT

TENANT = uuid.uuid4()
OTHER_TENANT = uuid.uuid4()
SECRET = new_webhook_secret()


def sealed_format() -> str:
    """What the database's CHECK on the sealed columns accepts: migration 0018's SEALED_FORMAT, read
    from the revision's source (a revision is not a module to import)."""
    revision = REPO_ROOT / "backend" / "alembic" / "versions" / "0018_credentials_sealed.py"
    tree = ast.parse(revision.read_text(encoding="utf-8"))
    [pattern] = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets] == ["SEALED_FORMAT"]
        and isinstance(node.value, ast.Constant)
    ]
    assert isinstance(pattern, str)
    return pattern


SEALED_FORMAT = re.compile(sealed_format())


def key(fill: int) -> str:
    return base64.urlsafe_b64encode(bytes([fill]) * 32).decode()


def test_the_first_key_seals_and_every_key_opens() -> None:
    old = KeyRing.parse(f"old:{key(1)}")
    both = KeyRing.parse(f" new:{key(2)} , old:{key(1)} ")
    assert both.current == "new" and set(both.keys) == {"new", "old"}
    sealed_before = old.seal(SECRET, TENANT, PURPOSE_WEBHOOK_SECRET)
    assert both.open(sealed_before, TENANT, PURPOSE_WEBHOOK_SECRET) == SECRET
    sealed_after = both.seal(SECRET, TENANT, PURPOSE_WEBHOOK_SECRET)
    assert both.key_id_of(sealed_before) == "old" and both.key_id_of(sealed_after) == "new"
    with pytest.raises(SealingError, match="unknown version or key id 'new'"):
        old.open(sealed_after, TENANT, PURPOSE_WEBHOOK_SECRET)


def test_without_the_old_key_its_values_no_longer_open() -> None:
    """Why re-sealing comes before removing a key."""
    sealed = KeyRing.parse(f"old:{key(1)}").seal(SECRET, TENANT, PURPOSE_WEBHOOK_SECRET)
    with pytest.raises(SealingError):
        KeyRing.parse(f"new:{key(2)}").open(sealed, TENANT, PURPOSE_WEBHOOK_SECRET)


def test_a_sealed_value_shows_nothing_of_the_plaintext_and_never_repeats() -> None:
    ring = KeyRing.parse(new_key_ring("k1"))
    first, second = (ring.seal(SECRET, TENANT, PURPOSE_WEBHOOK_SECRET) for _ in range(2))
    assert first != second  # a fresh nonce each time
    for sealed in (first, second):
        assert SECRET not in sealed and SECRET.removeprefix("whsec_") not in sealed
        assert ring.open(sealed, TENANT, PURPOSE_WEBHOOK_SECRET) == SECRET


def test_the_database_accepts_sealed_values_and_refuses_plaintext() -> None:
    ring = KeyRing.parse(new_key_ring())
    for purpose, plaintext in ((PURPOSE_WEBHOOK_SECRET, SECRET), (PURPOSE_PLATFORM_API_KEY, "sk_test_abc:def/123==")):
        assert SEALED_FORMAT.match(ring.seal(plaintext, TENANT, purpose))
        assert not SEALED_FORMAT.match(plaintext)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " , ",
        key(1),  # no key id
        f":{key(1)}",
        "k1:",
        f"k1:{base64.urlsafe_b64encode(b'x' * 16).decode()}",  # AES-128, not 256
        "k1:not base64 at all!",
        f"k1:{key(1)},k1:{key(2)}",  # which k1 seals?
    ],
)
def test_malformed_rings_are_refused_without_showing_a_key(text: str) -> None:
    with pytest.raises(SealingError) as refused:
        KeyRing.parse(text)
    assert key(1) not in str(refused.value) and key(2) not in str(refused.value)


def _tampered(sealed: str, position: int) -> str:
    version, kid, encoded = sealed.split(":")
    raw = bytearray(base64.b64decode(encoded))
    raw[position] ^= 0x01
    return f"{version}:{kid}:{base64.b64encode(bytes(raw)).decode()}"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: _tampered(s, 0), id="nonce"),
        pytest.param(lambda s: _tampered(s, 12), id="ciphertext"),
        pytest.param(lambda s: _tampered(s, -1), id="tag"),
        pytest.param(lambda s: s[:-8], id="truncated"),
        pytest.param(lambda s: s + "AAAA", id="extended"),
        pytest.param(lambda s: s.replace("v1:", "v2:", 1), id="version"),
        pytest.param(lambda s: s.replace(":k1:", ":k9:", 1), id="key-id"),
        pytest.param(lambda s: s.rsplit(":", 1)[0] + ":not*base64", id="not-base64"),
        pytest.param(lambda s: "v1:k1:", id="empty"),
        pytest.param(lambda s: SECRET, id="plaintext"),
    ],
)
def test_tampered_values_do_not_open(tamper: object) -> None:
    ring = KeyRing.parse(f"k1:{key(1)}")
    sealed = ring.seal(SECRET, TENANT, PURPOSE_WEBHOOK_SECRET)
    assert ring.open(sealed, TENANT, PURPOSE_WEBHOOK_SECRET) == SECRET  # control: untouched, it opens
    with pytest.raises(SealingError):
        ring.open(tamper(sealed), TENANT, PURPOSE_WEBHOOK_SECRET)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("tenant", "purpose", "ring_text"),
    [
        pytest.param(OTHER_TENANT, PURPOSE_WEBHOOK_SECRET, f"k1:{key(1)}", id="another-tenant"),
        pytest.param(str(OTHER_TENANT), PURPOSE_WEBHOOK_SECRET, f"k1:{key(1)}", id="another-tenant-as-text"),
        pytest.param(TENANT, PURPOSE_PLATFORM_API_KEY, f"k1:{key(1)}", id="another-column"),
        pytest.param(TENANT, PURPOSE_WEBHOOK_SECRET, f"k1:{key(2)}", id="same-key-id-another-key"),
    ],
)
def test_a_value_opens_only_for_its_tenant_column_and_key(tenant: object, purpose: str, ring_text: str) -> None:
    sealed = KeyRing.parse(f"k1:{key(1)}").seal(SECRET, TENANT, PURPOSE_WEBHOOK_SECRET)
    assert KeyRing.parse(f"k1:{key(1)}").open(sealed, str(TENANT), PURPOSE_WEBHOOK_SECRET) == SECRET
    with pytest.raises(SealingError, match="does not open"):
        KeyRing.parse(ring_text).open(sealed, tenant, purpose)  # type: ignore[arg-type]


def test_the_ring_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEYS_ENV)
    with pytest.raises(SealingError, match=f"{KEYS_ENV} is not set"):
        key_ring()
    monkeypatch.setenv(KEYS_ENV, f"k7:{key(7)}")
    assert key_ring().current == "k7"


def test_a_value_that_does_not_open_is_absent_and_reported_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(KEYS_ENV, f"k1:{key(1)}")
    _report_unopened.cache_clear()
    good = key_ring().seal(SECRET, TENANT, PURPOSE_WEBHOOK_SECRET)
    copied = key_ring().seal("another tenant's secret", OTHER_TENANT, PURPOSE_WEBHOOK_SECRET)
    caplog.set_level(logging.WARNING, logger="app.core.sealing")
    assert open_or_none(good, TENANT, PURPOSE_WEBHOOK_SECRET) == SECRET
    assert caplog.records == []
    for _ in range(3):
        assert open_or_none(copied, TENANT, PURPOSE_WEBHOOK_SECRET) is None
    assert open_or_none(_tampered(good, 12), TENANT, PURPOSE_WEBHOOK_SECRET) is None
    reports = [record.getMessage() for record in caplog.records]
    assert len(reports) == 2  # once per value, however often it is tried
    for report in reports:
        assert str(TENANT) in report and PURPOSE_WEBHOOK_SECRET in report and "'k1'" in report
        assert SECRET not in report and copied.split(":")[2] not in report and good.split(":")[2] not in report
