-- Outbox relay (app_system): mark claimed rows sent.
CREATE OR REPLACE FUNCTION outbox_mark_dispatched(p_ids bigint[])
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp VOLATILE AS $$
    WITH sent AS (
        UPDATE outbox SET dispatched_at = now(), attempts = attempts + 1
        WHERE id = ANY(p_ids) AND dispatched_at IS NULL RETURNING 1
    )
    SELECT count(*)::integer FROM sent
$$
