-- Finishes a pending ledger row (blocked, cached or failed); a finished row is never rewritten.
-- A step of app_system's LLM functions, which verified the context and name its tenant and user
-- here; app_system's, and only they call it (the runtime has no EXECUTE; were it given EXECUTE, it
-- would run as the caller, under row-level security).
CREATE OR REPLACE FUNCTION llm_finish(p_tenant uuid, p_user text, p_call uuid, p_status text, p_blocked_reason text,
                                      p_failure_reason text, p_provider_attempted boolean, p_was_cached boolean,
                                      p_response jsonb)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- The ledger row is found by its primary key alone: the ownership check is a row comparison no
    -- index serves, so a plan cached while llm_api_calls was small cannot walk the tenant's every call
    -- through the (tenant_id, request_id, endpoint) index instead (it did: settle grew with each call).
    UPDATE public.llm_api_calls
    SET status = p_status, blocked_reason = p_blocked_reason, failure_reason = p_failure_reason,
        provider_attempted = p_provider_attempted, was_cached = p_was_cached, response = p_response,
        finished_at = now()
    WHERE id = p_call AND status = 'pending' AND (tenant_id, user_id) IS NOT DISTINCT FROM (p_tenant, p_user);
END $$
