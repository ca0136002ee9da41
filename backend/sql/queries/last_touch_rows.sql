-- Attribution (app.attribution.last_touch): a tenant's last-touch result rows. Each conversion
-- credits the latest touchpoint of the same customer inside the lookback window; ties break on
-- (occurred_at, external_event_id, id), so reruns match. The recompute inserts these rows.
-- Binds: :tenant_id, :lookback_days. The tenant is named although row-level security scopes the
-- rows too: the name is what the planner answers with the tenant's indexes.
SELECT c.tenant_id, 'last_touch', (c.occurred_at AT TIME ZONE 'UTC')::date,
       coalesce(t.channel, 'unattributed'), sum(coalesce(c.revenue_cents, 0)), count(*)
FROM attribution_events c
LEFT JOIN LATERAL (
    SELECT tp.channel FROM attribution_events tp
    WHERE tp.tenant_id = c.tenant_id AND tp.event_type = 'touchpoint'
      AND tp.customer_key = c.customer_key
      AND tp.occurred_at <= c.occurred_at
      AND tp.occurred_at > c.occurred_at - make_interval(days => :lookback_days)
    ORDER BY tp.occurred_at DESC, tp.external_event_id DESC, tp.id DESC
    LIMIT 1
) t ON true
WHERE c.tenant_id = :tenant_id AND c.event_type = 'conversion'
GROUP BY 1, 2, 3, 4
