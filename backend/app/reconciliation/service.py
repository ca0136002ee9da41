"""Reconciliation, api side: request a run (the worker executes it), read runs and status."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core import logs
from app.core.schemas import iso_or_none
from app.core.sealing import PURPOSE_PLATFORM_API_KEY, key_ring

PLATFORMS = ("stripe",)
MAX_WINDOW = timedelta(days=93)

Platform = Literal["stripe"]


def _iso_string(value: object) -> object:
    """Timestamps arrive as RFC 3339 strings, as the contract says; no epoch numbers coerced."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_string)]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: Platform
    window_start: Timestamp
    window_end: Timestamp

    @model_validator(mode="after")
    def _sane_window(self) -> RunRequest:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        if self.window_end - self.window_start > MAX_WINDOW:
            raise ValueError(f"window longer than {MAX_WINDOW.days} days")
        return self


class ConnectionRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    api_key: str = Field(
        min_length=8, max_length=500, pattern=r"^[\x21-\x7e]+$", description="the platform's API key (printable ASCII)"
    )


INSERT_RUN_SQL = text(
    "INSERT INTO reconciliation_runs (tenant_id, platform, window_start, window_end) "
    "VALUES (:tenant_id, :platform, :start, :end) RETURNING id, status"
)
INSERT_RUN_OUTBOX_SQL = text(
    "INSERT INTO outbox (tenant_id, kind, payload) VALUES (:tenant_id, 'reconciliation_run', CAST(:payload AS jsonb))"
)
RUN_SQL = text(
    "SELECT id, platform, status, window_start, window_end, totals, digest, failure_reason, pages_fetched, "
    "retries, created_at, finished_at FROM reconciliation_runs WHERE id = :run_id"
)
ITEMS_SQL = text(
    "SELECT external_id, status, ledger_amount_cents, platform_amount_cents FROM reconciliation_items "
    "WHERE run_id = :run_id ORDER BY external_id"
)
LATEST_SQL = text(
    """
    SELECT DISTINCT ON (platform) id, platform, status, totals, finished_at
    FROM reconciliation_runs WHERE status IN ('succeeded', 'failed')
    ORDER BY platform, created_at DESC
    """
)
UPSERT_CONNECTION_SQL = text(
    "INSERT INTO platform_connections (tenant_id, platform, api_key_sealed) VALUES (:tenant_id, :platform, :sealed) "
    "ON CONFLICT (tenant_id, platform) DO UPDATE SET api_key_sealed = EXCLUDED.api_key_sealed"
)


async def request_run(conn: AsyncConnection, tenant_id: uuid.UUID, request: RunRequest) -> Any:
    run = (
        await conn.execute(
            INSERT_RUN_SQL,
            {
                "tenant_id": tenant_id,
                "platform": request.platform,
                "start": request.window_start,
                "end": request.window_end,
            },
        )
    ).one()
    payload = json.dumps({"run_id": str(run.id), **logs.correlation()})
    await conn.execute(INSERT_RUN_OUTBOX_SQL, {"tenant_id": tenant_id, "payload": payload})
    return run


async def get_run(conn: AsyncConnection, run_id: uuid.UUID) -> dict[str, Any] | None:
    run = (await conn.execute(RUN_SQL, {"run_id": run_id})).first()
    if run is None:
        return None
    items = (await conn.execute(ITEMS_SQL, {"run_id": run_id})).all()
    return {
        "run_id": str(run.id),
        "platform": run.platform,
        "status": run.status,
        "window": {"start": run.window_start.isoformat(), "end": run.window_end.isoformat()},
        "totals": run.totals,
        "digest": run.digest,
        "failure_reason": run.failure_reason,
        "pages_fetched": run.pages_fetched,
        "retries": run.retries,
        "created_at": run.created_at.isoformat(),
        "finished_at": iso_or_none(run.finished_at),
        "items": [
            {
                "external_id": i.external_id,
                "status": i.status,
                "ledger_amount_cents": i.ledger_amount_cents,
                "platform_amount_cents": i.platform_amount_cents,
            }
            for i in items
        ],
    }


def _discrepancies(totals: dict[str, Any] | None) -> int:
    if not totals:
        return 0
    return int(totals["missing_in_ledger"]) + int(totals["missing_on_platform"]) + int(totals["amount_mismatch"])


async def status(conn: AsyncConnection) -> dict[str, Any]:
    latest = {row.platform: row for row in await conn.execute(LATEST_SQL)}
    platforms = []
    for platform in PLATFORMS:
        row = latest.get(platform)
        if row is None:
            platforms.append(
                {
                    "platform": platform,
                    "status": "never_run",
                    "last_run_id": None,
                    "finished_at": None,
                    "discrepancies": 0,
                }
            )
            continue
        found = _discrepancies(row.totals)
        state = "failed" if row.status == "failed" else "discrepancies" if found else "reconciled"
        platforms.append(
            {
                "platform": platform,
                "status": state,
                "last_run_id": str(row.id),
                "finished_at": iso_or_none(row.finished_at),
                "discrepancies": found,
            }
        )
    states = {p["status"] for p in platforms}
    overall = next((s for s in ("failed", "discrepancies", "never_run") if s in states), "reconciled")
    return {"overall_status": overall, "platforms": platforms}


async def save_connection(conn: AsyncConnection, tenant_id: uuid.UUID, platform: str, api_key: str) -> None:
    sealed = key_ring().seal(api_key, tenant_id, PURPOSE_PLATFORM_API_KEY)
    await conn.execute(UPSERT_CONNECTION_SQL, {"tenant_id": tenant_id, "platform": platform, "sealed": sealed})
