"""Webhook intake as server-side functions: one call reads a tenant's secrets, one stores an event
with its outbox row (or a dead letter).

The intake made five round trips per webhook through SQLAlchemy (begin, tenant context, secrets,
insert, commit) and spent most of the api's time in the driver layers. Each function sets the
tenant context itself, transaction-local, and a call outside an explicit transaction is its own
transaction: the context ends with the call, so a pooled connection never carries it further.
They run as the caller (SECURITY INVOKER), so row-level security applies to every row they touch.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from app.core.roles import drop_functions, install_functions
from app.core.tenancy import TENANT_GUC, USER_GUC

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SET_CONTEXT = f"PERFORM set_config('{TENANT_GUC}', p_tenant::text, true), set_config('{USER_GUC}', 'webhook', true);"

SECRETS = f"""
CREATE FUNCTION webhook_intake_secrets(p_tenant uuid) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    {SET_CONTEXT}
    RETURN QUERY SELECT secret FROM webhook_secrets WHERE expires_at IS NULL OR expires_at > now();
END $$
"""

# A duplicate (same webhook id, or same platform event id) stores nothing and returns the first
# delivery's event id.
EVENT = f"""
CREATE FUNCTION webhook_intake_event(
    p_tenant uuid, p_platform text, p_external_event_id text, p_webhook_id text, p_event_type text,
    p_customer_key text, p_channel text, p_occurred_at timestamptz, p_revenue_cents bigint,
    p_currency text, p_payload jsonb, OUT event_id uuid, OUT duplicate boolean)
LANGUAGE plpgsql AS $$
BEGIN
    {SET_CONTEXT}
    INSERT INTO attribution_events (tenant_id, platform, external_event_id, webhook_id, event_type, customer_key,
                                    channel, occurred_at, revenue_cents, currency, payload)
    VALUES (p_tenant, p_platform, p_external_event_id, p_webhook_id, p_event_type, p_customer_key, p_channel,
            p_occurred_at, p_revenue_cents, p_currency, p_payload)
    ON CONFLICT DO NOTHING
    RETURNING id INTO event_id;
    duplicate := event_id IS NULL;
    IF duplicate THEN
        SELECT e.id INTO event_id FROM attribution_events e
        WHERE e.webhook_id = p_webhook_id OR (e.platform = p_platform AND e.external_event_id = p_external_event_id)
        LIMIT 1;
    ELSE
        INSERT INTO outbox (tenant_id, kind) VALUES (p_tenant, 'attribution_recompute');
    END IF;
END $$
"""

DEAD_LETTER = f"""
CREATE FUNCTION webhook_intake_dead_letter(
    p_tenant uuid, p_platform text, p_webhook_id text, p_reason_code text, p_detail jsonb,
    p_payload_sha256 text, p_payload_bytes integer, p_scrubbed_payload jsonb) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    {SET_CONTEXT}
    INSERT INTO dead_letter_events (tenant_id, platform, webhook_id, reason_code, detail, payload_sha256,
                                    payload_bytes, scrubbed_payload)
    VALUES (p_tenant, p_platform, p_webhook_id, p_reason_code, p_detail, p_payload_sha256, p_payload_bytes,
            p_scrubbed_payload)
    RETURNING id INTO v_id;
    RETURN v_id;
END $$
"""

FUNCTIONS = {
    "webhook_intake_secrets(uuid)": SECRETS,
    "webhook_intake_event(uuid, text, text, text, text, text, text, timestamptz, bigint, text, jsonb)": EVENT,
    "webhook_intake_dead_letter(uuid, text, text, text, jsonb, text, integer, jsonb)": DEAD_LETTER,
}


def upgrade() -> None:
    install_functions(op.execute, FUNCTIONS)


def downgrade() -> None:
    drop_functions(op.execute, FUNCTIONS)
