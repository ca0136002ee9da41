-- Webhook intake: the tenant's signing secrets in force, sealed (the api opens them). Takes the
-- context token the api signed for the tenant the request names and sets it, transaction-local;
-- runs as the caller, so row-level security applies: a token that does not verify yields nothing.
CREATE OR REPLACE FUNCTION webhook_intake_secrets(p_context text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.tenant_context', p_context, true);
    RETURN QUERY SELECT secret_sealed FROM webhook_secrets WHERE expires_at IS NULL OR expires_at > now();
END $$
