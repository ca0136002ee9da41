-- Row-level security on webhook_secrets (enabled and forced): a transaction
-- sees and writes its tenant's rows only.
CREATE POLICY tenant_isolation ON webhook_secrets
USING (tenant_id = (SELECT app_current_tenant()))
WITH CHECK (tenant_id = (SELECT app_current_tenant()));
