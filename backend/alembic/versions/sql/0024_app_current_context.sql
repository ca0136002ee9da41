-- The tenant and user of the current transaction in one verification (as in app_current_tenant()):
-- the user-scoped tables' policies compare both columns with it, as one sub-select, so a statement
-- verifies once per expression instead of once for the tenant and once more for the user.
-- No valid token: both NULL, which match no row.
-- app_system's (SECURITY DEFINER).
CREATE OR REPLACE FUNCTION app_current_context(OUT tenant_id uuid, OUT user_id text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_token text := current_setting('app.tenant_context', true);
    v_key record;
BEGIN
    SELECT k.k_ipad, k.k_opad INTO v_key FROM public.tenant_context_keys k WHERE k.key_id = split_part(v_token, '.', 5);
    IF NOT FOUND OR split_part(v_token, '.', 1) <> 'v1'
       OR sha256(convert_to(right(v_token, 64), 'UTF8'))
          <> sha256(convert_to(encode(sha256(v_key.k_opad || sha256(v_key.k_ipad || convert_to(left(v_token, -65), 'UTF8'))), 'hex'), 'UTF8')) THEN
        RETURN;
    END IF;
    IF split_part(v_token, '.', 4)::bigint <= extract(epoch FROM now()) THEN
        RETURN;
    END IF;
    tenant_id := split_part(v_token, '.', 2)::uuid;
    user_id := nullif(convert_from(decode(split_part(v_token, '.', 3), 'hex'), 'UTF8'), '');
END $$
