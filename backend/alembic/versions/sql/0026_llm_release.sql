-- Returns a held budget reservation: spent (at most what was held) or released whole.
-- A step of app_system's LLM functions, which verified the context and name its tenant and user
-- here; app_system's, and only they call it (the runtime has no EXECUTE; were it given EXECUTE, it
-- would run as the caller, under row-level security).
CREATE OR REPLACE FUNCTION llm_release(p_tenant uuid, p_user text, p_call uuid, p_spent numeric) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    WITH returned AS (
        UPDATE public.llm_budget_reservations SET status = CASE WHEN p_spent > 0 THEN 'settled' ELSE 'released' END
        WHERE call_id = p_call AND tenant_id = p_tenant AND user_id = p_user AND status = 'held'
        RETURNING period_start, amount_cents)
    UPDATE public.llm_budget_periods b
    SET reserved_cents = b.reserved_cents - r.amount_cents, spent_cents = b.spent_cents + least(p_spent, r.amount_cents)
    FROM returned r
    WHERE b.tenant_id = p_tenant AND b.user_id = p_user AND b.period_start = r.period_start;
END $$
