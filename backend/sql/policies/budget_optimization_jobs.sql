-- Row-level security on budget_optimization_jobs (enabled and forced): a transaction
-- sees and writes its user's rows inside its tenant only.
CREATE POLICY tenant_isolation ON budget_optimization_jobs
USING ((tenant_id, user_id) = (SELECT c.tenant_id, c.user_id FROM app_current_context() c))
WITH CHECK ((tenant_id, user_id) = (SELECT c.tenant_id, c.user_id FROM app_current_context() c));
