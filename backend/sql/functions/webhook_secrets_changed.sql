-- Trigger function on webhook_secrets (migration 0031): names the tenant whose signing secrets were
-- added, rotated, re-sealed or removed on channel webhook_secrets_changed, where every api process
-- LISTENs and drops that tenant from its secret cache (app.webhooks.secret_cache). PostgreSQL
-- delivers a notification when the transaction commits, and never for one that rolls back. A
-- TRUNCATE names no tenant: '*' drops every entry.
CREATE OR REPLACE FUNCTION webhook_secrets_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('webhook_secrets_changed', '*');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('webhook_secrets_changed', OLD.tenant_id::text);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('webhook_secrets_changed', NEW.tenant_id::text);
    END IF;
    RETURN NULL;
END $$
