-- Outbox relay, across tenants (app_system): claim pending rows. A tenant with a recompute in flight or
-- sent within the coalescing window is busy, and its new recompute rows wait (the next recompute
-- covers them). The row locks belong to the caller's transaction, which marks the rows sent (or
-- rolls back, when the broker failed) after handing the messages over.
CREATE OR REPLACE FUNCTION outbox_claim(p_limit integer, p_coalesce_s double precision)
RETURNS TABLE (id bigint, tenant_id uuid, kind text, payload jsonb)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp VOLATILE AS $$
    WITH busy AS (
        SELECT b.tenant_id FROM outbox b
        WHERE b.kind = 'attribution_recompute' AND b.completed_at IS NULL AND b.dispatched_at IS NOT NULL
        UNION
        SELECT b.tenant_id FROM outbox b
        WHERE b.kind = 'attribution_recompute' AND b.dispatched_at > now() - make_interval(secs => p_coalesce_s)
    )
    SELECT o.id, o.tenant_id, o.kind, o.payload FROM outbox o
    WHERE o.dispatched_at IS NULL
      AND NOT (o.kind = 'attribution_recompute' AND o.tenant_id IN (SELECT busy.tenant_id FROM busy))
    ORDER BY o.id LIMIT p_limit FOR UPDATE OF o SKIP LOCKED
$$
