-- /metrics, across tenants (SECURITY DEFINER, owned by app_system): LLM calls by outcome and cost.
CREATE OR REPLACE FUNCTION metrics_llm_outcomes()
RETURNS TABLE (status text, reason text, n bigint, cost numeric)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp STABLE AS $$
    SELECT status, coalesce(blocked_reason, failure_reason,
                            CASE WHEN was_cached THEN 'cache' ELSE 'provider' END),
           count(*), coalesce(sum(cost_cents), 0)
    FROM llm_api_calls GROUP BY 1, 2
$$
