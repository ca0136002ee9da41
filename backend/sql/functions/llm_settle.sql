-- LLM boundary, step 9 after a provider success: spend the reservation, count the hour, then finish
-- the call's own ledger row, write its distillation records and cached answer, and reset a breaker
-- that was not clean.
-- app_system's (SECURITY DEFINER): every statement names the verified tenant and user (see
-- llm_route_admit). The cost always counts against the caller's hour, whatever became of the call
-- meanwhile; the rest is written only while the call is the caller's and pending, so a call id of
-- another tenant or user, or none, gains no distillation or ledger row and resets no breaker. The
-- breaker is the one of the provider and model the call was admitted for, as its ledger row names
-- them (the breaker is shared by every tenant: a session may not name one). A success resets a
-- closed breaker's failures and closes a half-open one (its trial); an open breaker stays open until
-- its cool-down has passed and a trial succeeds, whatever a call admitted before it opened reports.
-- Hours are UTC's, named so, whatever the session's TimeZone (else a session could key a fresh hour).
CREATE OR REPLACE FUNCTION llm_settle(
    p_call uuid, p_cost numeric, p_hourly_limit numeric, p_close_breaker boolean, p_reasoning jsonb,
    p_metadata jsonb, p_cache_key text, p_response jsonb, p_prompt_tokens integer, p_completion_tokens integer,
    p_latency_ms numeric, p_context text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tenant uuid;
    v_user text;
    v_provider text;
    v_model text;
    v_reasoning uuid := gen_random_uuid();
    v_metadata uuid := gen_random_uuid();
BEGIN
    SELECT c.tenant_id, c.user_id INTO v_tenant, v_user FROM public.app_required_context(p_context) c;
    PERFORM public.llm_release(v_tenant, v_user, p_call, p_cost);
    INSERT INTO public.llm_hourly_shutoff AS h (tenant_id, user_id, hour_start, spent_cents, shut_off)
    VALUES (v_tenant, v_user, date_trunc('hour', now(), 'UTC'), p_cost, p_cost >= p_hourly_limit)
    ON CONFLICT (tenant_id, user_id, hour_start) DO UPDATE
    SET spent_cents = h.spent_cents + p_cost, shut_off = h.shut_off OR h.spent_cents + p_cost >= p_hourly_limit;
    -- The ledger row is found by its primary key alone: the ownership check is a row comparison no
    -- index serves, so a plan cached while llm_api_calls was small cannot walk the tenant's every call
    -- through the (tenant_id, request_id, endpoint) index instead (it did: settle grew with each call).
    -- The call's own rows, in one statement: the ledger row is finished only while it is the
    -- caller's and pending (the update's row lock keeps a concurrent finish out), and its
    -- distillation records (under the ids the row now names) and cached answer are written only
    -- from the row that update returned; then the breaker of the call's model.
    WITH finished AS (
        UPDATE public.llm_api_calls
        SET status = 'succeeded', provider_attempted = true, prompt_tokens = p_prompt_tokens,
            completion_tokens = p_completion_tokens, cost_cents = p_cost, latency_ms = p_latency_ms,
            reasoning_ref = v_reasoning, metadata_ref = v_metadata, response = p_response, finished_at = now()
        WHERE id = p_call AND status = 'pending' AND (tenant_id, user_id) IS NOT DISTINCT FROM (v_tenant, v_user)
        RETURNING provider, model),
    distilled AS (
        INSERT INTO public.llm_distillation_records (id, tenant_id, user_id, call_id, kind, content)
        SELECT d.id, v_tenant, v_user, p_call, d.kind, d.content
        FROM finished, (VALUES (v_reasoning, 'reasoning', p_reasoning), (v_metadata, 'metadata', p_metadata)) d (id, kind, content)),
    cached AS (
        INSERT INTO public.llm_response_cache (tenant_id, cache_key, response)
        SELECT v_tenant, p_cache_key, p_response FROM finished
        ON CONFLICT (tenant_id, cache_key) DO NOTHING)
    SELECT f.provider, f.model INTO v_provider, v_model FROM finished f;
    IF FOUND AND p_close_breaker THEN
        UPDATE public.llm_breaker_state
        SET state = 'closed', consecutive_failures = 0, opened_at = NULL, updated_at = now()
        WHERE provider = v_provider AND model = v_model AND state <> 'open';
    END IF;
END $$
