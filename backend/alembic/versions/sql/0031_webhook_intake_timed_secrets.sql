-- Webhook intake (migration 0031): the tenant's signing secrets in force, sealed (the api opens
-- them), each with the seconds it has left by the database's clock (NULL: no end of grace), which the
-- api's secret cache counts down (app.webhooks.secret_cache). Takes the context token the api signed
-- for the tenant the request names and sets it, transaction-local; runs as the caller, so row-level
-- security applies: a token that does not verify yields nothing. (webhook_intake_secrets, without the
-- seconds, stays for apis older than 0031 during a rolling deploy.)
CREATE OR REPLACE FUNCTION webhook_intake_timed_secrets(p_context text)
RETURNS TABLE (secret_sealed text, seconds_left double precision)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.tenant_context', p_context, true);
    RETURN QUERY
        SELECT s.secret_sealed, extract(epoch FROM s.expires_at - now())::double precision
        FROM webhook_secrets s
        WHERE s.expires_at IS NULL OR s.expires_at > now();
END $$
