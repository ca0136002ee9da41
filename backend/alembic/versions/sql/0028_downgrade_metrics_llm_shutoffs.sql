-- /metrics, across tenants (app_system): users shut off this hour.
CREATE OR REPLACE FUNCTION metrics_llm_shutoffs()
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp STABLE AS $$
    SELECT count(*) FROM llm_hourly_shutoff WHERE hour_start = date_trunc('hour', now()) AND shut_off
$$
