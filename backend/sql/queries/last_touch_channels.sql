-- Attribution (app.attribution.service, GET /api/v1/attribution/results): revenue and conversions
-- by channel over a window of days, from the tenant's last-touch results (row-level security
-- scopes them to the request's tenant). Binds: :start, :end (dates, inclusive).
SELECT channel, sum(revenue_cents)::bigint AS revenue_cents, sum(conversions)::bigint AS conversions
FROM attribution_results
WHERE model = 'last_touch' AND day BETWEEN :start AND :end
GROUP BY channel ORDER BY channel
