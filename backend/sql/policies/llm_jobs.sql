-- Row-level security on llm_jobs (enabled and forced): a transaction
-- sees and writes its user's rows inside its tenant only.
CREATE POLICY tenant_isolation ON llm_jobs
USING ((tenant_id, user_id) = (SELECT c.tenant_id, c.user_id FROM app_current_context() c))
WITH CHECK ((tenant_id, user_id) = (SELECT c.tenant_id, c.user_id FROM app_current_context() c));
-- app_system prunes finished rows across tenants, for the housekeeping SECURITY DEFINER function it owns.
CREATE POLICY system_role ON llm_jobs FOR ALL TO app_system USING (true);
