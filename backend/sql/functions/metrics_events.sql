-- /metrics, across tenants (app_system): stored events per platform.
CREATE OR REPLACE FUNCTION metrics_events()
RETURNS TABLE (platform text, n bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp STABLE AS $$
    SELECT platform, count(*) FROM attribution_events GROUP BY 1
$$
