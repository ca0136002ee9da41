"""Request dependencies: authentication turns a bearer key into a tenant context."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from app.core.db import system_transaction
from app.core.problems import ProblemError
from app.core.security import parse_bearer
from app.core.tenancy import TenantContext
from app.services.tenants import resolve_api_key


async def current_tenant(authorization: Annotated[str | None, Header()] = None) -> TenantContext:
    key = parse_bearer(authorization)
    if key is None:
        raise ProblemError(401, "Unauthorized", "missing or malformed bearer API key", "auth_missing")
    async with system_transaction() as conn:
        ctx = await resolve_api_key(conn, key)
    if ctx is None:
        raise ProblemError(401, "Unauthorized", "unknown or revoked API key", "auth_invalid")
    return ctx


Tenant = Annotated[TenantContext, Depends(current_tenant)]
