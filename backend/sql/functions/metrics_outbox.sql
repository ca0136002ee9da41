-- /metrics and /health/ready, across tenants (app_system): rows not yet sent and the oldest one's age,
-- through the outbox_pending partial index.
CREATE OR REPLACE FUNCTION metrics_outbox()
RETURNS TABLE (pending bigint, oldest_pending_age_s double precision)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp STABLE AS $$
    SELECT (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL),
           coalesce(extract(epoch FROM now() - (
               SELECT o.created_at FROM outbox o WHERE o.dispatched_at IS NULL ORDER BY o.id LIMIT 1)), 0)::float8
$$
