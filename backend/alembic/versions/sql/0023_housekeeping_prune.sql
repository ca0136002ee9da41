-- Housekeeping (app_system; app.maintenance): removes one batch, at most 5,000 rows, of one kind of
-- finished work older than the caller's retention, counts it in housekeeping_totals, and returns how
-- many rows went. Rows another transaction holds are skipped, never waited for. Ledgers and evidence
-- are out of its reach: app_system may delete from the six tables below and nothing else.
CREATE OR REPLACE FUNCTION housekeeping_prune(p_kind text, p_retention_s double precision, p_batch integer)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET lock_timeout = '2s' VOLATILE AS $$
DECLARE
    v_cutoff timestamptz := now() - make_interval(secs => greatest(coalesce(p_retention_s, 0), 0));
    -- kombu and Celery write naive timestamps in the writer's local time, the server's zone here
    v_local_cutoff timestamp := localtimestamp - make_interval(secs => greatest(coalesce(p_retention_s, 0), 0));
    v_batch integer := least(greatest(coalesce(p_batch, 1), 1), 5000);
    v_removed integer;
BEGIN
    IF p_kind = 'outbox' THEN
        -- Completed work. Each tenant's newest recompute row stays: its id is the tenant's data
        -- watermark, which the LLM cache key hashes in (llm_admit).
        WITH doomed AS (
            SELECT o.id FROM outbox o
            WHERE o.completed_at < v_cutoff
              AND (o.kind <> 'attribution_recompute' OR o.id < (
                  SELECT max(w.id) FROM outbox w WHERE w.tenant_id = o.tenant_id AND w.kind = 'attribution_recompute'))
            ORDER BY o.completed_at LIMIT v_batch FOR UPDATE OF o SKIP LOCKED
        ), gone AS (DELETE FROM outbox o USING doomed d WHERE o.id = d.id RETURNING 1)
        SELECT count(*) INTO v_removed FROM gone;
    ELSIF p_kind = 'broker_messages' THEN
        -- Consumed: kombu's SQL transport marks a delivered message invisible, stamps it then, and
        -- never reads it again (a message in flight is restored as a new row).
        WITH doomed AS (
            SELECT m.id FROM kombu_message m
            WHERE m.visible = false AND m.timestamp < v_local_cutoff
            ORDER BY m.timestamp LIMIT v_batch FOR UPDATE SKIP LOCKED
        ), gone AS (DELETE FROM kombu_message m USING doomed d WHERE m.id = d.id RETURNING 1)
        SELECT count(*) INTO v_removed FROM gone;
    ELSIF p_kind = 'task_results' THEN
        -- Celery's result rows: its own cleanup needs beat, which this design does not run.
        WITH doomed AS (
            SELECT r.id FROM celery_taskmeta r
            WHERE r.date_done < v_local_cutoff
            ORDER BY r.date_done LIMIT v_batch FOR UPDATE SKIP LOCKED
        ), gone AS (DELETE FROM celery_taskmeta r USING doomed d WHERE r.id = d.id RETURNING 1)
        SELECT count(*) INTO v_removed FROM gone;
    ELSIF p_kind = 'llm_cache' THEN
        WITH doomed AS (
            SELECT c.tenant_id, c.cache_key FROM llm_response_cache c
            WHERE c.created_at < v_cutoff
            ORDER BY c.created_at LIMIT v_batch FOR UPDATE SKIP LOCKED
        ), gone AS (
            DELETE FROM llm_response_cache c USING doomed d
            WHERE c.tenant_id = d.tenant_id AND c.cache_key = d.cache_key RETURNING 1)
        SELECT count(*) INTO v_removed FROM gone;
    ELSIF p_kind = 'attribution_jobs' THEN
        WITH doomed AS (
            SELECT j.id FROM attribution_jobs j
            WHERE j.finished_at < v_cutoff AND j.status IN ('succeeded', 'failed', 'timed_out')
            ORDER BY j.finished_at LIMIT v_batch FOR UPDATE SKIP LOCKED
        ), gone AS (DELETE FROM attribution_jobs j USING doomed d WHERE j.id = d.id RETURNING 1)
        SELECT count(*) INTO v_removed FROM gone;
    ELSIF p_kind = 'llm_jobs' THEN
        -- A job's investigation or budget result goes with it (ON DELETE CASCADE); its ledger row stays.
        WITH doomed AS (
            SELECT j.id FROM llm_jobs j
            WHERE j.finished_at < v_cutoff AND j.status <> 'queued'
            ORDER BY j.finished_at LIMIT v_batch FOR UPDATE SKIP LOCKED
        ), gone AS (DELETE FROM llm_jobs j USING doomed d WHERE j.id = d.id RETURNING 1)
        SELECT count(*) INTO v_removed FROM gone;
    ELSE
        RAISE EXCEPTION 'unknown housekeeping kind %', p_kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO housekeeping_totals AS t (kind, removed, batches, last_batch_at)
    VALUES (p_kind, v_removed, 1, now())
    ON CONFLICT (kind) DO UPDATE
    SET removed = t.removed + EXCLUDED.removed, batches = t.batches + 1, last_batch_at = EXCLUDED.last_batch_at;
    RETURN v_removed;
END
$$
