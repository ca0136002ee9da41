-- The verified tenant and user of the current transaction (app_current_context()), or an
-- insufficient_privilege error when there is none: the LLM boundary's SECURITY DEFINER functions
-- start with it, verify once, and name that tenant and user in every statement they run.
-- app_system's; executable by app_system alone (the functions that call it are app_system's).
CREATE OR REPLACE FUNCTION app_required_context(OUT tenant_id uuid, OUT user_id text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT c.tenant_id, c.user_id INTO tenant_id, user_id FROM public.app_current_context() c;
    IF tenant_id IS NULL OR user_id IS NULL THEN
        RAISE EXCEPTION 'no valid tenant context (app.tenant_context)' USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$
