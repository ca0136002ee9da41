-- /metrics, across tenants (app_system): dead letters per reason.
CREATE OR REPLACE FUNCTION metrics_dead_letters()
RETURNS TABLE (reason_code text, n bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp STABLE AS $$
    SELECT reason_code, count(*) FROM dead_letter_events GROUP BY 1
$$
