-- Finishes a pending ledger row (blocked, cached or failed); a finished row is never rewritten.
-- A step of app_system's LLM functions, which verified the context and name its tenant and user
-- here; app_system's, and only they call it (the runtime has no EXECUTE; were it given EXECUTE, it
-- would run as the caller, under row-level security).
CREATE OR REPLACE FUNCTION llm_finish(p_tenant uuid, p_user text, p_call uuid, p_status text, p_blocked_reason text,
                                      p_failure_reason text, p_provider_attempted boolean, p_was_cached boolean,
                                      p_response jsonb)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE public.llm_api_calls
    SET status = p_status, blocked_reason = p_blocked_reason, failure_reason = p_failure_reason,
        provider_attempted = p_provider_attempted, was_cached = p_was_cached, response = p_response,
        finished_at = now()
    WHERE id = p_call AND tenant_id = p_tenant AND user_id = p_user AND status = 'pending';
END $$
