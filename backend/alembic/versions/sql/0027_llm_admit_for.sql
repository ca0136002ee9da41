-- LLM boundary, admission steps 2-7 (DESIGN §8): idempotency claim (the ledger row), kill switch,
-- hourly shutoff, budget reservation, cache, breaker. Returns the claimed row's id and 'duplicate',
-- 'blocked' with a reason, 'cached' with the answer, or 'admitted' with the estimate held;
-- breaker_clean says a success has no breaker state to reset.
-- Shared rows are locked in one order everywhere: budget period, hourly row, breaker.
-- A step of llm_route_admit and llm_admit, which verified the context and name its tenant and user
-- here (one verification per admission, not one per function); app_system's, and only they call it
-- (the runtime has no EXECUTE; were it given EXECUTE, it would run as the caller, under row-level
-- security). Every statement names that tenant and user.
CREATE OR REPLACE FUNCTION llm_admit_for(
    p_tenant uuid, p_user text, p_request_id text, p_endpoint text, p_complexity numeric, p_tier text,
    p_provider text, p_model text, p_prompt_sha256 text, p_key_base text, p_estimate numeric, p_hourly_limit numeric,
    p_env_kill_switch boolean, p_breaker_open_s double precision,
    OUT call_id uuid, OUT verdict text, OUT blocked_reason text, OUT cached jsonb, OUT cache_key text,
    OUT breaker_clean boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_killed boolean;
    v_shut_off boolean;
    v_breaker public.llm_breaker_state%ROWTYPE;
BEGIN
    -- 2. idempotency claim: the ledger row, once per (tenant, request id, endpoint)
    INSERT INTO public.llm_api_calls (tenant_id, user_id, request_id, endpoint, complexity, tier, provider, model,
                                      prompt_sha256, status)
    VALUES (p_tenant, p_user, p_request_id, p_endpoint, p_complexity, p_tier, p_provider, p_model,
            p_prompt_sha256, 'pending')
    ON CONFLICT (tenant_id, request_id, endpoint) DO NOTHING
    RETURNING id INTO call_id;
    IF call_id IS NULL THEN  -- the user's own earlier call; another user's stays unseen (call_id NULL)
        SELECT c.id INTO call_id FROM public.llm_api_calls c
        WHERE c.tenant_id = p_tenant AND c.user_id = p_user AND c.request_id = p_request_id
          AND c.endpoint = p_endpoint;
        verdict := 'duplicate';
        RETURN;
    END IF;
    verdict := 'blocked';
    -- 3. kill switch and 4. hourly shutoff, read together
    SELECT p_env_kill_switch OR coalesce((SELECT k.enabled FROM public.llm_kill_switch k WHERE k.id = 1), false),
           coalesce((SELECT h.shut_off OR h.spent_cents >= p_hourly_limit FROM public.llm_hourly_shutoff h
                     WHERE h.tenant_id = p_tenant AND h.user_id = p_user AND h.hour_start = date_trunc('hour', now(), 'UTC')),
                    false)
    INTO v_killed, v_shut_off;
    IF v_killed THEN
        blocked_reason := 'provider_kill_switch';
    ELSIF v_shut_off THEN
        blocked_reason := 'hourly_shutoff';
    ELSE
        -- 5. budget reservation: hold the estimate only if it fits (the row lock serializes callers)
        WITH held AS (
            UPDATE public.llm_budget_periods SET reserved_cents = reserved_cents + p_estimate
            WHERE tenant_id = p_tenant AND user_id = p_user AND period_start = date_trunc('month', now() AT TIME ZONE 'UTC')::date
              AND spent_cents + reserved_cents + p_estimate <= limit_cents
            RETURNING period_start)
        INSERT INTO public.llm_budget_reservations (tenant_id, user_id, call_id, period_start, amount_cents, status)
        SELECT p_tenant, p_user, llm_admit_for.call_id, held.period_start, p_estimate, 'held' FROM held;
        IF NOT FOUND THEN
            blocked_reason := 'budget_exhausted';
        END IF;
    END IF;
    IF blocked_reason IS NOT NULL THEN
        PERFORM public.llm_finish(p_tenant, p_user, call_id, 'blocked', blocked_reason, NULL, false, false, NULL);
        RETURN;
    END IF;
    -- 6. cache: the key hashes in the tenant's data watermark, so new events make old answers unreachable
    SELECT k.key, c.response INTO cache_key, cached
    FROM (SELECT encode(sha256(convert_to(p_key_base || ':' || (
              SELECT coalesce(max(o.id), 0) FROM public.outbox o
              WHERE o.tenant_id = p_tenant AND o.kind = 'attribution_recompute'), 'UTF8')), 'hex') AS key) k
    LEFT JOIN public.llm_response_cache c ON c.tenant_id = p_tenant AND c.cache_key = k.key;
    IF cached IS NOT NULL THEN
        PERFORM public.llm_release(p_tenant, p_user, call_id, 0);
        PERFORM public.llm_finish(p_tenant, p_user, call_id, 'succeeded', NULL, NULL, false, true, cached);
        verdict := 'cached';
        RETURN;
    END IF;
    -- 7. circuit breaker. Closed: go. Open and cooling down: no. Open and cooled down: exactly one
    -- half-open trial (the row lock makes it one).
    SELECT * INTO v_breaker FROM public.llm_breaker_state WHERE provider = p_provider AND model = p_model FOR UPDATE;
    IF NOT FOUND THEN  -- first call to this model: create the row, then lock it like any other
        INSERT INTO public.llm_breaker_state (provider, model) VALUES (p_provider, p_model) ON CONFLICT DO NOTHING;
        SELECT * INTO v_breaker FROM public.llm_breaker_state WHERE provider = p_provider AND model = p_model FOR UPDATE;
    END IF;
    breaker_clean := v_breaker.state = 'closed' AND v_breaker.consecutive_failures = 0;
    IF v_breaker.state <> 'closed' THEN
        IF coalesce(CASE WHEN v_breaker.state = 'open' THEN v_breaker.opened_at ELSE v_breaker.updated_at END,
                    '-infinity') > now() - make_interval(secs => p_breaker_open_s) THEN
            PERFORM public.llm_release(p_tenant, p_user, call_id, 0);
            blocked_reason := 'breaker_open';
            PERFORM public.llm_finish(p_tenant, p_user, call_id, 'blocked', blocked_reason, NULL, false, false, NULL);
            RETURN;
        END IF;
        UPDATE public.llm_breaker_state SET state = 'half_open', updated_at = now()
        WHERE provider = p_provider AND model = p_model;
    END IF;
    verdict := 'admitted';
END $$
