-- Outbox relay (app_system): jobs whose worker vanished time out (and their tenant's results are
-- recomputed); work sent long ago without a completion is sent again.
CREATE OR REPLACE FUNCTION outbox_sweep(p_redispatch_after_s double precision)
RETURNS TABLE (expired_jobs integer, redispatched integer)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp VOLATILE AS $$
    WITH expired AS (
        UPDATE attribution_jobs
        SET status = 'timed_out', fallback_event = 'deterministic_last_touch', finished_at = now(),
            error = 'deadline passed without a result (worker lost)',
            result = '{"served_model": "last_touch"}'::jsonb
        WHERE status = 'running' AND deadline_at < now()
        RETURNING tenant_id
    ), recompute AS (  -- runs though nothing reads it, as every data-modifying WITH does
        INSERT INTO outbox (tenant_id, kind) SELECT tenant_id, 'attribution_recompute' FROM expired
    ), resent AS (
        UPDATE outbox SET dispatched_at = NULL, last_error = 'no completion in time; sent again'
        WHERE completed_at IS NULL AND dispatched_at < now() - make_interval(secs => p_redispatch_after_s)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM expired)::integer, (SELECT count(*) FROM resent)::integer
$$
