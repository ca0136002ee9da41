-- The verified tenant and user of the current transaction (app_current_context()), or an
-- insufficient_privilege error when there is none: the LLM boundary's SECURITY DEFINER functions
-- start with it, verify once, and name that tenant and user in every statement they run.
-- p_context, when given, is the signed context token the caller passed with its call: it is set
-- for the rest of the transaction first (as SET_CONTEXT_SQL would), so a call that carries its own
-- context is one statement, not two; it is verified like any other.
-- app_system's; executable by app_system alone (the functions that call it are app_system's).
CREATE OR REPLACE FUNCTION app_required_context(p_context text, OUT tenant_id uuid, OUT user_id text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_set text;
BEGIN
    IF p_context IS NOT NULL THEN
        v_set := set_config('app.tenant_context', p_context, true);  -- an expression, not a query: cheaper
    END IF;
    SELECT c.tenant_id, c.user_id INTO tenant_id, user_id FROM public.app_current_context() c;
    IF tenant_id IS NULL OR user_id IS NULL THEN
        RAISE EXCEPTION 'no valid tenant context (app.tenant_context)' USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$
