"""Who a unit of work runs for, and the one statement that tells PostgreSQL.

Row-level security policies compare rows with ``app_current_tenant()`` and ``app_current_user()``,
which read one setting, ``app.tenant_context``: a token the api or worker signs here with a key
PostgreSQL also knows (``tenant_context_keys``, readable by ``app_system`` alone), and which those
functions verify. ``app_user`` may set that setting to anything, but without the key it can only
set a token it was given: a raw tenant id, a token with the tenant swapped, an expired one or one
signed by an unknown key all read as "no context", and no context sees no rows.

    token := "v1." tenant "." hex(user) "." expires_unix_s "." key_id "." hex(HMAC-SHA256(key, everything before))

The token is set with ``set_config(..., true)`` (transaction-local, so a pooled connection never
carries a tenant into the next transaction) and always as a bound parameter, never in the SQL text
(which ``pg_stat_activity`` shows). The key is derived from the credential sealing ring
(``SECRETS_ENCRYPTION_KEYS``), so it rotates with it; docs/ops/roles.md has the procedure.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, TextClause, text

from app.core.sealing import KEYS_ENV, SealingError, key_ring

CONTEXT_GUC = "app.tenant_context"
API_KEY_GUC = "app.api_key_hash"
CONTEXT_FORMAT = "v1"
# Domain separation: the context key of a key id is never the sealing key itself.
CONTEXT_KEY_LABEL = b"app.tenant_context/v1"
# Long enough for any transaction and for clock skew between api and database hosts; short enough
# that a token seen somewhere it should not be is soon worthless. PostgreSQL checks it against the
# transaction's start time. Read here, not through Settings, so that tools and tests that sign without
# the runtime's whole configuration get the same lifetime (Settings validates the variable at start).
TTL_ENV = "TENANT_CONTEXT_TTL_S"
DEFAULT_CONTEXT_TTL_S = 300.0

SET_CONTEXT_SQL: TextClause = text(f"SELECT set_config('{CONTEXT_GUC}', :context, true)")
# For a harness connection that keeps one tenant for its whole session (asyncpg's $1 style).
SET_SESSION_CONTEXT_ASYNCPG = f"SELECT set_config('{CONTEXT_GUC}', $1, false)"
SET_API_KEY_SQL: TextClause = text(f"SELECT set_config('{API_KEY_GUC}', :key_hash, true)")
# The context before migration 0024: raw ids any session could set. Nothing at head reads them; tests
# set them to prove that, and to read a database migrated below 0024 (``legacy_params``).
LEGACY_TENANT_GUC = "app.current_tenant_id"
LEGACY_USER_GUC = "app.current_user_id"
SET_LEGACY_CONTEXT_SQL: TextClause = text(
    f"SELECT set_config('{LEGACY_TENANT_GUC}', :tenant_id, true), set_config('{LEGACY_USER_GUC}', :user_id, true)"
)

CONTEXT_KEYS_TABLE = "tenant_context_keys"
UPSERT_KEY_SQL: TextClause = text(
    f"INSERT INTO {CONTEXT_KEYS_TABLE} (key_id, k_ipad, k_opad) VALUES (:kid, :ipad, :opad) "
    "ON CONFLICT (key_id) DO UPDATE SET k_ipad = excluded.k_ipad, k_opad = excluded.k_opad"
)


@dataclass(frozen=True, slots=True)
class TenantContext:
    tenant_id: uuid.UUID
    user_id: str = ""

    def token(self, ttl_s: float | None = None) -> str:
        """A freshly signed token for this context, valid ``ttl_s`` (default: ``context_ttl_s()``)."""
        return sign_context(self, ttl_s=context_ttl_s() if ttl_s is None else ttl_s)

    def as_params(self) -> dict[str, str]:
        """The parameters of ``SET_CONTEXT_SQL``: bound, so the token is never in the SQL text."""
        return {"context": self.token()}


def legacy_params(ctx: TenantContext) -> dict[str, str]:
    """The parameters of ``SET_LEGACY_CONTEXT_SQL``: the unsigned ids the old scheme trusted."""
    return {"tenant_id": str(ctx.tenant_id), "user_id": ctx.user_id}


def worker_context(tenant_id: str) -> TenantContext:
    """The context of a worker task: its tenant (every task's first argument) and the user ``worker``."""
    return TenantContext(uuid.UUID(tenant_id), "worker")


def context_ttl_s() -> float:
    raw = os.environ.get(TTL_ENV, "").strip()
    return float(raw) if raw else DEFAULT_CONTEXT_TTL_S


def context_keys() -> tuple[str, dict[str, bytes]]:
    """The signing key id (the sealing ring's current one) and every key id's context key."""
    ring = key_ring()
    keys = ring.derived(CONTEXT_KEY_LABEL)
    bad = [kid for kid in keys if not kid or "." in kid or len(kid) > 64]
    if bad:  # a dot would split the token in the wrong place
        raise SealingError(f"{KEYS_ENV}: a key id must be 1-64 characters without '.'")
    return ring.current, keys


def sign_context(ctx: TenantContext, *, ttl_s: float = DEFAULT_CONTEXT_TTL_S, now: float | None = None) -> str:
    kid, keys = context_keys()
    return sign_with(keys[kid], kid, ctx, expires=int((time.time() if now is None else now) + ttl_s))


def sign_with(key: bytes, kid: str, ctx: TenantContext, *, expires: int) -> str:
    """A token for ``ctx`` under an explicit key (tests forge with it; the runtime uses ``sign_context``)."""
    message = f"{CONTEXT_FORMAT}.{ctx.tenant_id}.{ctx.user_id.encode().hex()}.{expires}.{kid}"
    return f"{message}.{hmac.new(key, message.encode(), hashlib.sha256).hexdigest()}"


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys (RFC 2104) for a key of at most one SHA-256 block: with
    them PostgreSQL computes the MAC from its builtin ``sha256()`` alone (it has no pgcrypto)."""
    if len(key) > 64:
        raise ValueError("an HMAC-SHA256 key longer than the block size must be hashed first")
    block = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def sync_context_keys(conn: Connection) -> list[str]:
    """Make ``tenant_context_keys`` hold exactly the key ids of the environment's ring (as the schema
    owner; migrations call it after every upgrade). Returns the key ids, never a key."""
    _, keys = context_keys()
    for kid, key in keys.items():
        ipad, opad = hmac_pads(key)
        conn.execute(UPSERT_KEY_SQL, {"kid": kid, "ipad": ipad, "opad": opad})
    conn.execute(text(f"DELETE FROM {CONTEXT_KEYS_TABLE} WHERE NOT (key_id = ANY(:kids))"), {"kids": list(keys)})
    return list(keys)
