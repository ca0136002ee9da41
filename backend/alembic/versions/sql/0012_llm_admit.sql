CREATE OR REPLACE FUNCTION llm_admit(
    p_request_id text, p_endpoint text, p_complexity numeric, p_tier text, p_provider text, p_model text,
    p_prompt_sha256 text, p_key_base text, p_estimate numeric, p_hourly_limit numeric,
    p_env_kill_switch boolean, p_breaker_open_s double precision,
    OUT call_id uuid, OUT verdict text, OUT blocked_reason text, OUT cached jsonb, OUT cache_key text,
    OUT breaker_clean boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_tenant uuid := app_current_tenant();
    v_user text := app_current_user();
    v_hourly llm_hourly_shutoff%ROWTYPE;
    v_period date;
    v_breaker llm_breaker_state%ROWTYPE;
BEGIN
    -- 2. idempotency claim: the ledger row, once per (tenant, request id, endpoint)
    INSERT INTO llm_api_calls (tenant_id, user_id, request_id, endpoint, complexity, tier, provider, model,
                               prompt_sha256, status)
    VALUES (v_tenant, v_user, p_request_id, p_endpoint, p_complexity, p_tier, p_provider, p_model,
            p_prompt_sha256, 'pending')
    ON CONFLICT (tenant_id, request_id, endpoint) DO NOTHING
    RETURNING id INTO call_id;
    IF call_id IS NULL THEN
        SELECT c.id INTO call_id FROM llm_api_calls c WHERE c.request_id = p_request_id AND c.endpoint = p_endpoint;
        verdict := 'duplicate';
        RETURN;
    END IF;
    verdict := 'blocked';
    -- 3. kill switch
    IF p_env_kill_switch OR coalesce((SELECT enabled FROM llm_kill_switch WHERE id = 1), false) THEN
        blocked_reason := 'provider_kill_switch';
    END IF;
    -- 4. hourly shutoff
    IF blocked_reason IS NULL THEN
        SELECT * INTO v_hourly FROM llm_hourly_shutoff
        WHERE tenant_id = v_tenant AND user_id = v_user AND hour_start = date_trunc('hour', now());
        IF FOUND AND (v_hourly.shut_off OR v_hourly.spent_cents >= p_hourly_limit) THEN
            blocked_reason := 'hourly_shutoff';
        END IF;
    END IF;
    -- 5. budget reservation: hold the estimate only if it fits (the row lock serializes callers)
    IF blocked_reason IS NULL THEN
        UPDATE llm_budget_periods SET reserved_cents = reserved_cents + p_estimate
        WHERE tenant_id = v_tenant AND user_id = v_user AND period_start = date_trunc('month', now())::date
          AND spent_cents + reserved_cents + p_estimate <= limit_cents
        RETURNING period_start INTO v_period;
        IF FOUND THEN
            INSERT INTO llm_budget_reservations (tenant_id, user_id, call_id, period_start, amount_cents, status)
            VALUES (v_tenant, v_user, call_id, v_period, p_estimate, 'held');
        ELSE
            blocked_reason := 'budget_exhausted';
        END IF;
    END IF;
    IF blocked_reason IS NOT NULL THEN
        PERFORM llm_finish(call_id, 'blocked', blocked_reason, NULL, false, false, NULL);
        RETURN;
    END IF;
    -- 6. cache: the key hashes in the tenant's data watermark, so new events make old answers unreachable
    cache_key := encode(sha256(convert_to(p_key_base || ':' || (
        SELECT coalesce(max(id), 0) FROM outbox WHERE tenant_id = v_tenant AND kind = 'attribution_recompute'), 'UTF8')), 'hex');
    SELECT c.response INTO cached FROM llm_response_cache c WHERE c.cache_key = llm_admit.cache_key;
    IF cached IS NOT NULL THEN
        PERFORM llm_release(call_id, 0);
        PERFORM llm_finish(call_id, 'succeeded', NULL, NULL, false, true, cached);
        verdict := 'cached';
        RETURN;
    END IF;
    -- 7. circuit breaker. Closed: go. Open and cooling down: no. Open and cooled down: exactly one
    -- half-open trial (the row lock makes it one).
    SELECT * INTO v_breaker FROM llm_breaker_state WHERE provider = p_provider AND model = p_model FOR UPDATE;
    IF NOT FOUND THEN  -- first call to this model: create the row, then lock it like any other
        INSERT INTO llm_breaker_state (provider, model) VALUES (p_provider, p_model) ON CONFLICT DO NOTHING;
        SELECT * INTO v_breaker FROM llm_breaker_state WHERE provider = p_provider AND model = p_model FOR UPDATE;
    END IF;
    breaker_clean := v_breaker.state = 'closed' AND v_breaker.consecutive_failures = 0;
    IF v_breaker.state <> 'closed' THEN
        IF coalesce(CASE WHEN v_breaker.state = 'open' THEN v_breaker.opened_at ELSE v_breaker.updated_at END,
                    '-infinity') > now() - make_interval(secs => p_breaker_open_s) THEN
            PERFORM llm_release(call_id, 0);
            blocked_reason := 'breaker_open';
            PERFORM llm_finish(call_id, 'blocked', blocked_reason, NULL, false, false, NULL);
            RETURN;
        END IF;
        UPDATE llm_breaker_state SET state = 'half_open', updated_at = now()
        WHERE provider = p_provider AND model = p_model;
    END IF;
    verdict := 'admitted';
END $$
