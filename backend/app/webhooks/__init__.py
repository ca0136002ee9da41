"""Signed webhook intake: revenue and touchpoints, from the HTTP request to a stored event.

    routes.py       POST /webhooks/{platform} (thin)
    intake.py       authenticate, validate, scrub and persist an event with its outbox row (one
                    server-side function call, webhook_intake_event in backend/sql)
    signatures.py   Standard Webhooks signatures (HMAC-SHA256), verified with the tenant's sealed secret
    payloads.py     payload schemas per platform and their mapping to one normalized event (pure)
    pii.py          PII removal before anything is stored (tenant-keyed hashes)
    schemas.py      response shapes

Rejections are problem documents with a status and a reason, and a dead letter where a tenant is known.
"""
