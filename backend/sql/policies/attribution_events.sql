-- Row-level security on attribution_events (enabled and forced): a transaction
-- sees and writes its tenant's rows only.
CREATE POLICY tenant_isolation ON attribution_events
USING (tenant_id = (SELECT app_current_tenant()))
WITH CHECK (tenant_id = (SELECT app_current_tenant()));
-- app_system reads across tenants, for the SECURITY DEFINER functions it owns (metrics); the runtime
-- reaches it only through them.
CREATE POLICY system_role ON attribution_events FOR SELECT TO app_system USING (true);
