-- Row-level security on llm_api_calls (enabled and forced): a transaction
-- sees and writes its user's rows inside its tenant only.
CREATE POLICY tenant_isolation ON llm_api_calls
USING ((tenant_id, user_id) = (SELECT c.tenant_id, c.user_id FROM app_current_context() c))
WITH CHECK ((tenant_id, user_id) = (SELECT c.tenant_id, c.user_id FROM app_current_context() c));
-- app_system reads across tenants for the SECURITY DEFINER functions it owns (metrics), and writes for
-- the LLM boundary's, which verify the context once and name its tenant and user in every statement;
-- the runtime reaches it only through them.
CREATE POLICY system_role ON llm_api_calls TO app_system USING (true) WITH CHECK (true);
