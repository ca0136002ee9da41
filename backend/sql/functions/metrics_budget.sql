-- /metrics, across tenants (app_system): this month's spent, reserved and capped budget. The month
-- is UTC's, as the LLM boundary keys it, whatever the session's TimeZone.
CREATE OR REPLACE FUNCTION metrics_budget()
RETURNS TABLE (spent numeric, reserved numeric, cap numeric)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp STABLE AS $$
    SELECT coalesce(sum(spent_cents), 0), coalesce(sum(reserved_cents), 0), coalesce(sum(limit_cents), 0)
    FROM llm_budget_periods WHERE period_start = date_trunc('month', now() AT TIME ZONE 'UTC')::date
$$
