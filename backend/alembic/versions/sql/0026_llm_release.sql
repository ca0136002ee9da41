-- Returns a held budget reservation: spent (at most what was held) or released whole.
-- app_system's (SECURITY DEFINER), called by its other LLM functions only (the runtime has no
-- EXECUTE): only a reservation of the verified tenant and user is returned.
CREATE OR REPLACE FUNCTION llm_release(p_call uuid, p_spent numeric) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tenant uuid;
    v_user text;
BEGIN
    SELECT c.tenant_id, c.user_id INTO v_tenant, v_user FROM public.app_required_context() c;
    WITH returned AS (
        UPDATE public.llm_budget_reservations SET status = CASE WHEN p_spent > 0 THEN 'settled' ELSE 'released' END
        WHERE call_id = p_call AND tenant_id = v_tenant AND user_id = v_user AND status = 'held'
        RETURNING period_start, amount_cents)
    UPDATE public.llm_budget_periods b
    SET reserved_cents = b.reserved_cents - r.amount_cents, spent_cents = b.spent_cents + least(p_spent, r.amount_cents)
    FROM returned r
    WHERE b.tenant_id = v_tenant AND b.user_id = v_user AND b.period_start = r.period_start;
END $$
