"""A Stripe-like balance-transactions API per account, with a deterministic seeded dataset.

    GET /v1/balance_transactions?created[gte]=&created[lt]=&limit=&starting_after=
    Authorization: Bearer <account api key>

Accounts and their transactions are loaded through the control endpoints, or generated from a
seed so the same seed always yields the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field

MAX_PAGE = 100


class Transaction(BaseModel):
    id: str
    source: str  # the charge id the merchant's webhooks carry
    amount: int
    currency: str = "usd"
    created: int
    type: str = "charge"


class AccountLoad(BaseModel):
    api_key: str = Field(min_length=8)
    transactions: list[Transaction] = Field(default_factory=list)


class SeedRequest(BaseModel):
    api_key: str = Field(min_length=8)
    seed: int = 0
    count: int = Field(default=250, ge=0, le=100_000)
    start: int = Field(description="unix seconds")
    end: int


@dataclass
class Account:
    api_key: str
    transactions: list[Transaction] = field(default_factory=list)


def seeded(seed: int, count: int, start: int, end: int) -> list[Transaction]:
    rng = random.Random(seed)  # noqa: S311 (test data, not security)
    return [
        Transaction(
            id=f"txn_{seed}_{i:06d}",
            source=f"ch_{seed}_{i:06d}",
            amount=rng.randint(100, 50_000),
            created=rng.randint(start, end - 1),
        )
        for i in range(count)
    ]


def build_router(accounts: dict[str, Account]) -> APIRouter:
    router = APIRouter()

    @router.put("/control/accounts/{account}")
    async def load_account(account: str, body: AccountLoad) -> dict[str, Any]:
        accounts[account] = Account(body.api_key, sorted(body.transactions, key=lambda t: (t.created, t.id)))
        return {"account": account, "transactions": len(body.transactions)}

    @router.post("/control/accounts/{account}/seed")
    async def seed_account(account: str, body: SeedRequest) -> dict[str, Any]:
        txns = seeded(body.seed, body.count, body.start, body.end)
        accounts[account] = Account(body.api_key, sorted(txns, key=lambda t: (t.created, t.id)))
        return {"account": account, "transactions": len(txns)}

    @router.get("/v1/balance_transactions")
    async def list_transactions(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 10,
        starting_after: str | None = None,
    ) -> dict[str, Any]:
        key = (authorization or "").removeprefix("Bearer ").strip()
        account = next((a for a in accounts.values() if a.api_key == key), None)
        if account is None:
            raise HTTPException(401, "invalid api key")
        gte = int(request.query_params.get("created[gte]", 0))
        lt = int(request.query_params.get("created[lt]", 2**62))
        window = [t for t in account.transactions if gte <= t.created < lt]
        if starting_after is not None:
            ids = [t.id for t in window]
            if starting_after not in ids:
                raise HTTPException(400, "starting_after is not in this listing")
            window = window[ids.index(starting_after) + 1 :]
        page = window[:limit]
        return {
            "object": "list",
            "data": [t.model_dump() for t in page],
            "has_more": len(window) > limit,
            "url": "/v1/balance_transactions",
        }

    return router
