-- Monthly LLM spend per tenant and user, with how many calls were blocked and why it cost what it did.
SELECT date_trunc('month', created_at)::date AS month,
       tenant_id,
       user_id,
       count(*) AS calls,
       count(*) FILTER (WHERE status = 'succeeded' AND NOT was_cached) AS provider_calls,
       count(*) FILTER (WHERE status = 'blocked') AS blocked_calls,
       count(*) FILTER (WHERE status = 'failed') AS failed_calls,
       coalesce(sum(cost_cents), 0) AS spent_cents
FROM llm_api_calls
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
