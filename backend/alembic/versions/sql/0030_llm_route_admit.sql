-- LLM boundary, step 1 and admission in one call: reads the share of the month's budget in use,
-- picks the pressure band (the tiers per band are chosen by the router in Python) and admits with
-- the band's model, estimate and cache-key base through llm_admit_for, under the tenant and user
-- it verified (one verification per admission).
-- app_system's (SECURITY DEFINER), like every LLM boundary function: each verifies the tenant context
-- once and names its tenant and user in every statement, instead of row-level security verifying it
-- again for every policy of every statement. A new period gets the operators' limit, not
-- p_monthly_limit (llm_budget_period_guard). Months and hours are UTC's, named so, whatever the
-- session's TimeZone (a session could otherwise key a fresh period or hour, and with it a fresh limit).
-- p_context, in each of them: the signed context token, passed with the call so that the call is one
-- statement (app_required_context sets and verifies it); NULL uses the transaction's own.
CREATE OR REPLACE FUNCTION llm_route_admit(
    p_request_id text, p_endpoint text, p_complexity numeric, p_monthly_limit numeric, p_pressure numeric[],
    p_tiers text[], p_models text[], p_key_bases text[], p_estimates numeric[], p_provider text,
    p_prompt_sha256 text, p_hourly_limit numeric, p_env_kill_switch boolean, p_breaker_open_s double precision,
    p_context text DEFAULT NULL, OUT tier text, OUT model text, OUT call_id uuid, OUT verdict text, OUT blocked_reason text, OUT cached jsonb,
    OUT cache_key text, OUT breaker_clean boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tenant uuid;
    v_user text;
    v_used numeric;
    v_band integer := 1;
    v_threshold numeric;
BEGIN
    SELECT c.tenant_id, c.user_id INTO v_tenant, v_user FROM public.app_required_context(p_context) c;
    -- 1. the router's input: the share of the month's budget in use. The month's row is created the
    -- first time it is missing, without a lock (admission takes it); a row another call created
    -- meanwhile is kept, and it is as empty as ours would be.
    SELECT (b.spent_cents + b.reserved_cents) / nullif(b.limit_cents, 0) INTO v_used FROM public.llm_budget_periods b
    WHERE b.tenant_id = v_tenant AND b.user_id = v_user AND b.period_start = date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    IF NOT FOUND THEN
        INSERT INTO public.llm_budget_periods (tenant_id, user_id, period_start, limit_cents)
        VALUES (v_tenant, v_user, date_trunc('month', now() AT TIME ZONE 'UTC')::date, p_monthly_limit)
        ON CONFLICT (tenant_id, user_id, period_start) DO NOTHING;
    END IF;
    FOREACH v_threshold IN ARRAY p_pressure LOOP
        IF coalesce(v_used, 0) >= v_threshold THEN
            v_band := v_band + 1;
        END IF;
    END LOOP;
    tier := p_tiers[v_band];
    model := p_models[v_band];
    -- 2-7, with the band's choices
    SELECT a.call_id, a.verdict, a.blocked_reason, a.cached, a.cache_key, a.breaker_clean
    INTO call_id, verdict, blocked_reason, cached, cache_key, breaker_clean
    FROM public.llm_admit_for(v_tenant, v_user, p_request_id, p_endpoint, p_complexity, tier, p_provider, model,
                              p_prompt_sha256, p_key_bases[v_band], p_estimates[v_band], p_hourly_limit,
                              p_env_kill_switch, p_breaker_open_s) a;
END $$
