"""Request dependencies every domain's routes use: a bearer key becomes a tenant context (``Tenant``),
and the route's unit of work runs in one transaction under that context (``TenantDB``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core import logs
from app.core.db import system_transaction, tenant_transaction
from app.core.problems import ProblemError
from app.core.security import parse_bearer
from app.core.tenancy import TenantContext
from app.tenants.service import resolve_api_key


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


async def tenant_connection(ctx: Tenant) -> AsyncIterator[AsyncConnection]:
    """The route's transaction, under the caller's tenant context: committed when the route returns,
    rolled back when it raises. Scope "function" ends it before the response is sent, so a client
    never hears 2xx for work that did not commit."""
    async with tenant_transaction(ctx) as conn:
        yield conn


TenantDB = Annotated[AsyncConnection, Depends(tenant_connection, scope="function")]


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
