-- The user of the current transaction, for the user-scoped LLM tables: the one named (hex-encoded,
-- so any user id fits) by a context token that verifies exactly as in app_current_tenant(). No valid
-- token, or an empty user, yields NULL, and NULL matches no row.
-- app_system's (SECURITY DEFINER); policies call it as (SELECT app_current_user()), once per statement.
CREATE OR REPLACE FUNCTION app_current_user() RETURNS text
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
    RETURN nullif(convert_from(decode(split_part(v_token, '.', 3), 'hex'), 'UTF8'), '');
END $$
