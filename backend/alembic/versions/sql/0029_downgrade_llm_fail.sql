-- LLM boundary, step 9 after a provider failure: return the reservation, count the failure (the
-- breaker opens at the threshold, or at once from half-open), finish the row.
-- app_system's (SECURITY DEFINER): the call's reservation and row are found under the verified
-- tenant and user only (llm_release, llm_finish).
CREATE OR REPLACE FUNCTION llm_fail(p_call uuid, p_provider text, p_model text, p_reason text, p_breaker_threshold integer)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tenant uuid;
    v_user text;
BEGIN
    SELECT c.tenant_id, c.user_id INTO v_tenant, v_user FROM public.app_required_context() c;
    PERFORM public.llm_release(v_tenant, v_user, p_call, 0);
    UPDATE public.llm_breaker_state b  -- the row exists: llm_admit created it before admitting this call
    SET consecutive_failures = b.consecutive_failures + 1,
        state = CASE WHEN b.state = 'half_open' OR b.consecutive_failures + 1 >= p_breaker_threshold
                     THEN 'open' ELSE b.state END,
        opened_at = CASE WHEN b.state = 'half_open' OR b.consecutive_failures + 1 >= p_breaker_threshold
                         THEN now() ELSE b.opened_at END,
        updated_at = now()
    WHERE provider = p_provider AND model = p_model;
    PERFORM public.llm_finish(v_tenant, v_user, p_call, 'failed', NULL, p_reason, true, false, NULL);
END $$
