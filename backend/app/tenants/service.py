"""Tenant provisioning and API-key resolution."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.sealing import PURPOSE_WEBHOOK_SECRET, key_ring
from app.core.security import hash_api_key, new_api_key
from app.core.tenancy import SET_API_KEY_SQL, SET_CONTEXT_SQL, TenantContext
from app.webhooks.signatures import new_webhook_secret


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant_id: uuid.UUID
    user_id: str
    # Secrets stay out of repr(), so no traceback, log or test report can print them.
    api_key: str = field(repr=False)  # shown once; only its hash is stored
    webhook_secret: str = field(repr=False)  # the tenant signs webhooks with it (Standard Webhooks)

    @property
    def context(self) -> TenantContext:
        return TenantContext(self.tenant_id, self.user_id)


def create_tenant(conn: Connection, name: str, user_id: str = "owner") -> ProvisionedTenant:
    """Create a tenant and its first API key inside the caller's transaction (sync)."""
    tenant = ProvisionedTenant(uuid.uuid4(), user_id, new_api_key(), new_webhook_secret())
    conn.execute(SET_CONTEXT_SQL, tenant.context.as_params())
    conn.execute(text("INSERT INTO tenants (tenant_id, name) VALUES (:t, :n)"), {"t": tenant.tenant_id, "n": name})
    _store_api_key(conn, tenant.context, tenant.api_key)
    _store_webhook_secret(conn, tenant.tenant_id, tenant.webhook_secret)
    return tenant


def _store_webhook_secret(conn: Connection, tenant_id: uuid.UUID, secret: str) -> None:
    conn.execute(
        text("INSERT INTO webhook_secrets (tenant_id, secret_sealed) VALUES (:t, :s)"),
        {"t": tenant_id, "s": key_ring().seal(secret, tenant_id, PURPOSE_WEBHOOK_SECRET)},
    )


def _store_api_key(conn: Connection, ctx: TenantContext, api_key: str, label: str = "") -> None:
    conn.execute(
        text("INSERT INTO api_keys (tenant_id, user_id, key_hash, label) VALUES (:t, :u, :h, :l)"),
        {"t": ctx.tenant_id, "u": ctx.user_id, "h": hash_api_key(api_key), "l": label},
    )


def issue_api_key(conn: Connection, ctx: TenantContext, label: str = "") -> str:
    """A new API key for a user of an existing tenant; only its hash is stored (sync, caller's transaction)."""
    api_key = new_api_key()
    _store_api_key(conn, ctx, api_key, label)
    return api_key


def add_user(conn: Connection, tenant: ProvisionedTenant, user_id: str) -> ProvisionedTenant:
    """Another user of an existing tenant, with an API key of its own (sync, caller's transaction)."""
    user = replace(tenant, user_id=user_id, api_key=new_api_key())
    conn.execute(SET_CONTEXT_SQL, user.context.as_params())
    _store_api_key(conn, user.context, user.api_key)
    return user


def rotate_webhook_secret(conn: Connection, ctx: TenantContext, grace_s: int = 86_400) -> str:
    """Issue a new secret; the ones in force stay valid for ``grace_s`` so senders can switch over."""
    conn.execute(SET_CONTEXT_SQL, ctx.as_params())
    conn.execute(
        text(
            "UPDATE webhook_secrets SET expires_at = now() + make_interval(secs => :grace) "
            "WHERE expires_at IS NULL OR expires_at > now() + make_interval(secs => :grace)"
        ),
        {"grace": grace_s},
    )
    secret = new_webhook_secret()
    _store_webhook_secret(conn, ctx.tenant_id, secret)
    return secret


RESOLVE_KEY_SQL = text("SELECT tenant_id, user_id FROM api_keys WHERE key_hash = :h AND revoked_at IS NULL")


async def resolve_api_key(conn: AsyncConnection, api_key: str) -> TenantContext | None:
    """The tenant and user an API key belongs to, or None. Runs inside the caller's transaction."""
    key_hash = hash_api_key(api_key)
    await conn.execute(SET_API_KEY_SQL, {"key_hash": key_hash})
    row = (await conn.execute(RESOLVE_KEY_SQL, {"h": key_hash})).first()
    return TenantContext(row.tenant_id, row.user_id) if row else None
