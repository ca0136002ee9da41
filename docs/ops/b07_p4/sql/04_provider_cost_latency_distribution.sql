-- Cost and latency of real provider calls, per provider, model and tier.
SELECT provider, model, tier,
       count(*) AS calls,
       count(*) FILTER (WHERE status = 'failed') AS failures,
       coalesce(sum(cost_cents), 0) AS cost_cents,
       round(percentile_cont(0.50) WITHIN GROUP (ORDER BY latency_ms)::numeric, 3) AS p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)::numeric, 3) AS p95_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)::numeric, 3) AS p99_ms,
       max(latency_ms) AS max_ms
FROM llm_api_calls
WHERE provider_attempted
GROUP BY provider, model, tier
ORDER BY provider, model, tier;
