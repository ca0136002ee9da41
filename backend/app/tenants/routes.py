"""Who am I: the tenant and user behind the caller's API key, read under RLS."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from app.core.problems import ProblemError
from app.core.schemas import problems
from app.tenants.auth import Tenant, TenantDB

router = APIRouter(prefix="/api/v1", tags=["tenants"], responses=problems(401))


class Me(BaseModel):
    tenant_id: str
    tenant_name: str
    user_id: str


@router.get("/me", response_model=Me)
async def me(ctx: Tenant, conn: TenantDB) -> Me:
    row = (await conn.execute(text("SELECT tenant_id, name FROM tenants"))).first()
    if row is None:  # RLS hid it: the context did not reach the database
        raise ProblemError(500, "Tenant context lost", "tenant row not visible in its own context", "rls_context")
    return Me(tenant_id=str(row.tenant_id), tenant_name=row.name, user_id=ctx.user_id)
