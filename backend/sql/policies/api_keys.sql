-- Row-level security on api_keys (enabled and forced): a transaction
-- sees and writes its tenant's rows only.
CREATE POLICY tenant_isolation ON api_keys
USING (tenant_id = (SELECT app_current_tenant()))
WITH CHECK (tenant_id = (SELECT app_current_tenant()));
-- Authentication must find a key before it knows the tenant: a caller who already holds the key
-- (and so its hash) may read exactly that one row, nothing else.
CREATE POLICY key_lookup ON api_keys FOR SELECT
USING (key_hash = app_presented_key_hash());
