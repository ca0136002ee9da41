"""Tenants, their users and credentials.

routes.py        GET /me (who the caller's key belongs to)
auth.py          the request dependency: bearer API key -> tenant context (every domain's routes use it)
service.py       provisioning (tenant, user, key, webhook secret) and API-key resolution; the
                 operator CLI (scripts/ops/tenants.py) calls it
credentials.py   the sealed credential columns and re-sealing every tenant's values at once
"""
