-- Webhook intake: store a rejected delivery as a dead letter (scrubbed payload, hash and size), for
-- the tenant of the context token the api signed (p_context): a token that does not verify stores nothing.
CREATE OR REPLACE FUNCTION webhook_intake_dead_letter(
    p_context text, p_platform text, p_webhook_id text, p_reason_code text, p_detail jsonb,
    p_payload_sha256 text, p_payload_bytes integer, p_scrubbed_payload jsonb) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_tenant uuid;
    v_id uuid;
BEGIN
    PERFORM set_config('app.tenant_context', p_context, true);
    v_tenant := app_current_tenant();
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'no valid tenant context' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO dead_letter_events (tenant_id, platform, webhook_id, reason_code, detail, payload_sha256,
                                    payload_bytes, scrubbed_payload)
    VALUES (v_tenant, p_platform, p_webhook_id, p_reason_code, p_detail, p_payload_sha256, p_payload_bytes,
            p_scrubbed_payload)
    RETURNING id INTO v_id;
    RETURN v_id;
END $$
