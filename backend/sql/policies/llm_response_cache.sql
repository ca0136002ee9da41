-- Row-level security on llm_response_cache (enabled and forced): a transaction
-- sees and writes its tenant's rows only.
CREATE POLICY tenant_isolation ON llm_response_cache
USING (tenant_id = (SELECT app_current_tenant()))
WITH CHECK (tenant_id = (SELECT app_current_tenant()));
-- app_system prunes finished rows across tenants, for the housekeeping SECURITY DEFINER function it owns.
CREATE POLICY system_role ON llm_response_cache FOR ALL TO app_system USING (true);
