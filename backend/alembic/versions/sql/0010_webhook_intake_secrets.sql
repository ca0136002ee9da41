CREATE FUNCTION webhook_intake_secrets(p_tenant uuid) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.current_tenant_id', p_tenant::text, true), set_config('app.current_user_id', 'webhook', true);
    RETURN QUERY SELECT secret FROM webhook_secrets WHERE expires_at IS NULL OR expires_at > now();
END $$
