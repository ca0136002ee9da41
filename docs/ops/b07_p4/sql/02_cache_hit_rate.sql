-- Cache effectiveness per endpoint: answers served, how many came from the cache, and the rate.
SELECT endpoint,
       count(*) FILTER (WHERE status = 'succeeded') AS served,
       count(*) FILTER (WHERE was_cached) AS cache_hits,
       round(100.0 * count(*) FILTER (WHERE was_cached)
             / nullif(count(*) FILTER (WHERE status = 'succeeded'), 0), 2) AS hit_rate_pct
FROM llm_api_calls
GROUP BY endpoint
ORDER BY endpoint;
