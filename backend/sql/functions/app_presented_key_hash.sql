-- The hash of the API key the current request presented (app.api_key_hash), for the one policy that
-- must find a key before any tenant is known (api_keys.key_lookup). Not a tenant context: it opens
-- only the row whose hash it is, and only a caller holding the key (or its hash) can name that.
CREATE OR REPLACE FUNCTION app_presented_key_hash() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('app.api_key_hash', true), '') $$
