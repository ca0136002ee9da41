CREATE OR REPLACE FUNCTION llm_release(p_call uuid, p_spent numeric) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_period date;
    v_amount numeric;
BEGIN
    -- Return a held reservation: spent (at most what was held) or released whole.
    UPDATE llm_budget_reservations SET status = CASE WHEN p_spent > 0 THEN 'settled' ELSE 'released' END
    WHERE call_id = p_call AND status = 'held'
    RETURNING period_start, amount_cents INTO v_period, v_amount;
    IF FOUND THEN
        UPDATE llm_budget_periods
        SET reserved_cents = reserved_cents - v_amount, spent_cents = spent_cents + least(p_spent, v_amount)
        WHERE tenant_id = app_current_tenant() AND user_id = app_current_user() AND period_start = v_period;
    END IF;
END $$
