-- Trigger on llm_hourly_shutoff: for the runtime an hour's spend never goes down and its shutoff
-- never lifts; the shutoff follows the operators' hourly limit, whatever limit the caller passed.
CREATE OR REPLACE FUNCTION llm_hourly_shutoff_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_has_role(current_user, 'app_rw', 'MEMBER') THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.spent_cents < OLD.spent_cents OR (OLD.shut_off AND NOT NEW.shut_off)) THEN
        RAISE EXCEPTION 'an hour''s spend and shutoff only move toward the limit'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.shut_off := NEW.shut_off OR NEW.spent_cents >= (SELECT hourly_limit_cents FROM llm_limits WHERE id = 1);
    RETURN NEW;
END $$
