-- LLM boundary, step 9 after a provider failure: return the reservation, count the failure (the
-- breaker opens at the threshold, or at once from half-open), finish the row.
-- app_system's (SECURITY DEFINER): only the caller's own pending call counts (the verified tenant
-- and user), and the breaker it moves is the one of the provider and model that call
-- was admitted for, as its ledger row names them: the breaker is shared by every tenant, so a
-- session may not name one, nor count a failure without a call of its own.
CREATE OR REPLACE FUNCTION llm_fail(p_call uuid, p_reason text, p_breaker_threshold integer, p_context text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tenant uuid;
    v_user text;
    v_provider text;
    v_model text;
BEGIN
    SELECT c.tenant_id, c.user_id INTO v_tenant, v_user FROM public.app_required_context(p_context) c;
    -- The reservation first, as llm_settle does (budget period, then the call's row, then the breaker:
    -- one lock order for both); it is the caller's own or nothing (llm_release names tenant and user).
    PERFORM public.llm_release(v_tenant, v_user, p_call, 0);
    -- The ledger row is found by its primary key alone: the ownership check is a row comparison no
    -- index serves, so a plan cached while llm_api_calls was small cannot walk the tenant's every call
    -- through the (tenant_id, request_id, endpoint) index instead (it did: settle grew with each call).
    SELECT c.provider, c.model INTO v_provider, v_model FROM public.llm_api_calls c
    WHERE c.id = p_call AND c.status = 'pending' AND (c.tenant_id, c.user_id) IS NOT DISTINCT FROM (v_tenant, v_user)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE public.llm_breaker_state b  -- the row exists: llm_admit created it before admitting this call
    SET consecutive_failures = b.consecutive_failures + 1,
        state = CASE WHEN b.state = 'half_open' OR b.consecutive_failures + 1 >= p_breaker_threshold
                     THEN 'open' ELSE b.state END,
        opened_at = CASE WHEN b.state = 'half_open' OR b.consecutive_failures + 1 >= p_breaker_threshold
                         THEN now() ELSE b.opened_at END,
        updated_at = now()
    WHERE provider = v_provider AND model = v_model;
    PERFORM public.llm_finish(v_tenant, v_user, p_call, 'failed', NULL, p_reason, true, false, NULL);
END $$
