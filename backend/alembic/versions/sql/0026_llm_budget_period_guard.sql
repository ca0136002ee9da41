-- Trigger on llm_budget_periods: operators are left alone; for the runtime (app_rw members, and
-- app_system, which runs the LLM boundary's functions for it) a new period gets the operators' limit
-- and starts empty, and spend is never taken back.
CREATE OR REPLACE FUNCTION llm_budget_period_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT (current_user = 'app_system' OR pg_has_role(current_user, 'app_rw', 'MEMBER')) THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.limit_cents := (SELECT l.monthly_budget_cents FROM public.llm_limits l WHERE l.id = 1);
        NEW.spent_cents := 0;
        NEW.reserved_cents := 0;
    ELSIF NEW.spent_cents < OLD.spent_cents THEN
        RAISE EXCEPTION 'spend is recorded, never taken back' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$
