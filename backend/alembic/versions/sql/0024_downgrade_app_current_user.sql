CREATE OR REPLACE FUNCTION app_current_user() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('app.current_user_id', true), '') $$
