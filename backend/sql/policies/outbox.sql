-- Row-level security on outbox (enabled and forced): a transaction
-- sees and writes its tenant's rows only.
CREATE POLICY tenant_isolation ON outbox
USING (tenant_id = (SELECT app_current_tenant()))
WITH CHECK (tenant_id = (SELECT app_current_tenant()));
-- app_system works across tenants for the outbox relay's SECURITY DEFINER functions.
CREATE POLICY system_role ON outbox FOR ALL TO app_system USING (true) WITH CHECK (true);
