-- /metrics, across tenants (app_system): users shut off this hour. The hour is UTC's, as the LLM
-- boundary keys it, whatever the session's TimeZone (a session in a zone off the hour by minutes
-- would count another hour).
CREATE OR REPLACE FUNCTION metrics_llm_shutoffs()
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp STABLE AS $$
    SELECT count(*) FROM llm_hourly_shutoff WHERE hour_start = date_trunc('hour', now(), 'UTC') AND shut_off
$$
