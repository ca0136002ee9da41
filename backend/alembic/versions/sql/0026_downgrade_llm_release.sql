-- Returns a held budget reservation: spent (at most what was held) or released whole.
CREATE OR REPLACE FUNCTION llm_release(p_call uuid, p_spent numeric) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- Return a held reservation: spent (at most what was held) or released whole.
    WITH returned AS (
        UPDATE llm_budget_reservations SET status = CASE WHEN p_spent > 0 THEN 'settled' ELSE 'released' END
        WHERE call_id = p_call AND status = 'held'
        RETURNING period_start, amount_cents)
    UPDATE llm_budget_periods b
    SET reserved_cents = b.reserved_cents - r.amount_cents, spent_cents = b.spent_cents + least(p_spent, r.amount_cents)
    FROM returned r
    WHERE b.tenant_id = app_current_tenant() AND b.user_id = app_current_user() AND b.period_start = r.period_start;
END $$
