"""Request dependencies: authentication turns a bearer key into a tenant context."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.core import logs
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
    logs.TENANT_ID.set(str(ctx.tenant_id))
    return ctx


Tenant = Annotated[TenantContext, Depends(current_tenant)]


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query_parameters(request: Request) -> None:
    """Refuse query parameters the contract does not declare, rather than silently ignoring them."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    allowed = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ProblemError(
            422, "Unprocessable Content", f"unknown query parameter(s): {unknown}", "unknown_query_parameter"
        )
