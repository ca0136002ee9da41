-- Webhook intake: store an event and its recompute outbox row in one call. A duplicate (same
-- webhook id, or same platform event id) stores nothing and returns the first delivery's event id,
-- found through the tenant's unique indexes. The tenant is the one of the context token the api
-- signed (p_context), never a parameter: a token that does not verify stores nothing.
CREATE OR REPLACE FUNCTION webhook_intake_event(
    p_context text, p_platform text, p_external_event_id text, p_webhook_id text, p_event_type text,
    p_customer_key text, p_channel text, p_occurred_at timestamptz, p_revenue_cents bigint,
    p_currency text, p_payload jsonb, OUT event_id uuid, OUT duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_tenant uuid;
BEGIN
    PERFORM set_config('app.tenant_context', p_context, true);
    v_tenant := app_current_tenant();
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'no valid tenant context' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO attribution_events (tenant_id, platform, external_event_id, webhook_id, event_type, customer_key,
                                    channel, occurred_at, revenue_cents, currency, payload)
    VALUES (v_tenant, p_platform, p_external_event_id, p_webhook_id, p_event_type, p_customer_key, p_channel,
            p_occurred_at, p_revenue_cents, p_currency, p_payload)
    ON CONFLICT DO NOTHING
    RETURNING id INTO event_id;
    duplicate := event_id IS NULL;
    IF duplicate THEN
        SELECT e.id INTO event_id FROM attribution_events e
        WHERE e.tenant_id = v_tenant AND (e.webhook_id = p_webhook_id OR (e.platform = p_platform AND e.external_event_id = p_external_event_id))
        LIMIT 1;
    ELSE
        INSERT INTO outbox (tenant_id, kind) VALUES (v_tenant, 'attribution_recompute');
    END IF;
END $$
