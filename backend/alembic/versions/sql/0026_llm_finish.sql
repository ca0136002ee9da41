-- Finishes a pending ledger row (blocked, cached or failed); a finished row is never rewritten.
-- app_system's (SECURITY DEFINER), called by its other LLM functions only (the runtime has no
-- EXECUTE): only a row of the verified tenant and user.
CREATE OR REPLACE FUNCTION llm_finish(p_call uuid, p_status text, p_blocked_reason text, p_failure_reason text,
                                      p_provider_attempted boolean, p_was_cached boolean, p_response jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tenant uuid;
    v_user text;
BEGIN
    SELECT c.tenant_id, c.user_id INTO v_tenant, v_user FROM public.app_required_context() c;
    UPDATE public.llm_api_calls
    SET status = p_status, blocked_reason = p_blocked_reason, failure_reason = p_failure_reason,
        provider_attempted = p_provider_attempted, was_cached = p_was_cached, response = p_response,
        finished_at = now()
    WHERE id = p_call AND tenant_id = v_tenant AND user_id = v_user AND status = 'pending';
END $$
