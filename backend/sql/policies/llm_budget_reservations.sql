-- Row-level security on llm_budget_reservations (enabled and forced): a transaction
-- sees and writes its user's rows inside its tenant only.
CREATE POLICY tenant_isolation ON llm_budget_reservations
USING ((tenant_id, user_id) = (SELECT c.tenant_id, c.user_id FROM app_current_context() c))
WITH CHECK ((tenant_id, user_id) = (SELECT c.tenant_id, c.user_id FROM app_current_context() c));
-- app_system writes for the LLM boundary's SECURITY DEFINER functions, which verify the context once and
-- name its tenant and user in every statement; the runtime reaches it only through them.
CREATE POLICY system_role ON llm_budget_reservations TO app_system USING (true) WITH CHECK (true);
