-- LLM boundary, admission steps 2-7 for a caller that has already picked its tier and model (the
-- route endpoint's llm_route_admit picks them from the budget's pressure band and calls
-- llm_admit_for itself): verifies the tenant context, then llm_admit_for under that tenant and user.
-- app_system's (SECURITY DEFINER), executable by the runtime.
CREATE OR REPLACE FUNCTION llm_admit(
    p_request_id text, p_endpoint text, p_complexity numeric, p_tier text, p_provider text, p_model text,
    p_prompt_sha256 text, p_key_base text, p_estimate numeric, p_hourly_limit numeric,
    p_env_kill_switch boolean, p_breaker_open_s double precision, p_context text DEFAULT NULL,
    OUT call_id uuid, OUT verdict text, OUT blocked_reason text, OUT cached jsonb, OUT cache_key text,
    OUT breaker_clean boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tenant uuid;
    v_user text;
BEGIN
    SELECT c.tenant_id, c.user_id INTO v_tenant, v_user FROM public.app_required_context(p_context) c;
    SELECT a.call_id, a.verdict, a.blocked_reason, a.cached, a.cache_key, a.breaker_clean
    INTO call_id, verdict, blocked_reason, cached, cache_key, breaker_clean
    FROM public.llm_admit_for(v_tenant, v_user, p_request_id, p_endpoint, p_complexity, p_tier, p_provider, p_model,
                              p_prompt_sha256, p_key_base, p_estimate, p_hourly_limit, p_env_kill_switch,
                              p_breaker_open_s) a;
END $$
