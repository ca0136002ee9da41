"""Standard Webhooks signature checks, including rotation and the timestamp tolerance."""

from __future__ import annotations

from app.webhooks.signatures import SignatureFailure, new_webhook_secret, sign, verify

BODY = b'{"id":"evt_1"}'
NOW = 1_800_000_000


def check(
    secrets: list[str],
    signature: str | None,
    *,
    timestamp: int = NOW,
    body: bytes = BODY,
    webhook_id: str | None = "msg_1",
) -> SignatureFailure | None:
    return verify(secrets, webhook_id, str(timestamp), signature, body, now=NOW, tolerance_s=300)


def test_valid_signature_passes() -> None:
    secret = new_webhook_secret()
    assert check([secret], sign(secret, "msg_1", NOW, BODY)) is None


def test_any_in_force_secret_and_any_offered_signature_passes() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    offered = f"v1,bogus= {sign(new, 'msg_1', NOW, BODY)}"
    assert check([old, new], offered) is None
    assert check([old, new], sign(old, "msg_1", NOW, BODY)) is None


def test_each_tampered_part_fails() -> None:
    secret = new_webhook_secret()
    good = sign(secret, "msg_1", NOW, BODY)
    assert check([secret], good, body=BODY + b" ") == SignatureFailure.MISMATCH
    assert check([secret], good, webhook_id="msg_2") == SignatureFailure.MISMATCH
    assert check([secret], sign(secret, "msg_1", NOW - 1, BODY)) == SignatureFailure.MISMATCH
    assert check([new_webhook_secret()], good) == SignatureFailure.MISMATCH  # someone else's secret
    assert check([], good) == SignatureFailure.MISMATCH  # unknown tenant: no secrets


def test_timestamp_tolerance_both_directions() -> None:
    secret = new_webhook_secret()
    for skew, expected in (
        (300, None),
        (301, SignatureFailure.OUT_OF_TOLERANCE),
        (-301, SignatureFailure.OUT_OF_TOLERANCE),
    ):
        stamp = NOW - skew
        assert check([secret], sign(secret, "msg_1", stamp, BODY), timestamp=stamp) == expected


def test_missing_or_malformed_headers() -> None:
    secret = new_webhook_secret()
    assert check([secret], None) == SignatureFailure.MISSING_HEADERS
    assert check([secret], "v1,x", webhook_id=None) == SignatureFailure.MISSING_HEADERS
    assert verify([secret], "m", "soon", "v1,x", BODY, now=NOW, tolerance_s=300) == SignatureFailure.BAD_TIMESTAMP
    assert check([secret], "v2," + sign(secret, "msg_1", NOW, BODY)[3:]) == SignatureFailure.MISMATCH
