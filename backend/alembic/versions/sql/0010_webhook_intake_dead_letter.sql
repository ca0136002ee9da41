CREATE FUNCTION webhook_intake_dead_letter(
    p_tenant uuid, p_platform text, p_webhook_id text, p_reason_code text, p_detail jsonb,
    p_payload_sha256 text, p_payload_bytes integer, p_scrubbed_payload jsonb) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    PERFORM set_config('app.current_tenant_id', p_tenant::text, true), set_config('app.current_user_id', 'webhook', true);
    INSERT INTO dead_letter_events (tenant_id, platform, webhook_id, reason_code, detail, payload_sha256,
                                    payload_bytes, scrubbed_payload)
    VALUES (p_tenant, p_platform, p_webhook_id, p_reason_code, p_detail, p_payload_sha256, p_payload_bytes,
            p_scrubbed_payload)
    RETURNING id INTO v_id;
    RETURN v_id;
END $$
