-- Row-level security on tenants (enabled and forced): a transaction
-- sees and writes its tenant's rows only.
CREATE POLICY tenant_isolation ON tenants
USING (tenant_id = (SELECT app_current_tenant()))
WITH CHECK (tenant_id = (SELECT app_current_tenant()));
