-- Every safety control's state: breakers per provider/model, the kill switch, and hourly shutoffs
-- of the last 24 hours.
SELECT 'breaker' AS control, provider || '/' || model AS subject, state,
       consecutive_failures::text AS detail, updated_at AS changed_at
FROM llm_breaker_state
UNION ALL
SELECT 'kill_switch', 'global', CASE WHEN enabled THEN 'on' ELSE 'off' END, coalesce(reason, ''), updated_at
FROM llm_kill_switch
UNION ALL
SELECT 'hourly_shutoff', tenant_id::text || '/' || user_id, CASE WHEN shut_off THEN 'shut_off' ELSE 'open' END,
       spent_cents::text, hour_start
FROM llm_hourly_shutoff
WHERE hour_start >= date_trunc('hour', now()) - interval '24 hours'
ORDER BY 1, 2;
