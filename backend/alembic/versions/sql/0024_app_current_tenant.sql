-- The tenant of the current transaction, on which every tenant policy keys: the one named by the
-- context token (app.tenant_context) the api or worker signed, else NULL, and NULL matches no row.
-- The token holds if its HMAC-SHA256 matches under the key id it names (tenant_context_keys, which
-- only app_system reads) and it had not expired when the transaction started. The MAC is computed
-- from builtin sha256() over the stored padded keys (RFC 2104; this PostgreSQL has no pgcrypto),
-- and the two MACs are compared through one more hash, so the comparison's time tells nothing.
-- A field is read only once the MAC holds: a malformed token cannot raise an error.
-- app_system's (SECURITY DEFINER); policies call it as (SELECT app_current_tenant()), once per
-- statement. app_current_user() verifies the same way (one function each: a nested call costs more).
CREATE OR REPLACE FUNCTION app_current_tenant() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_token text := current_setting('app.tenant_context', true);
    v_key record;
BEGIN
    SELECT k.k_ipad, k.k_opad INTO v_key FROM public.tenant_context_keys k WHERE k.key_id = split_part(v_token, '.', 5);
    IF NOT FOUND OR split_part(v_token, '.', 1) <> 'v1'
       OR sha256(convert_to(right(v_token, 64), 'UTF8'))
          <> sha256(convert_to(encode(sha256(v_key.k_opad || sha256(v_key.k_ipad || convert_to(left(v_token, -65), 'UTF8'))), 'hex'), 'UTF8')) THEN
        RETURN NULL;
    END IF;
    IF split_part(v_token, '.', 4)::bigint <= extract(epoch FROM now()) THEN
        RETURN NULL;
    END IF;
    RETURN split_part(v_token, '.', 2)::uuid;
END $$
