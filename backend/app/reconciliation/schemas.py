from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from app.attribution.schemas import Window

RunStatus = Literal["queued", "running", "succeeded", "failed"]
ItemStatus = Literal["matched", "missing_in_ledger", "missing_on_platform", "amount_mismatch"]


class RunCreated(BaseModel):
    run_id: str
    status: RunStatus


class Totals(BaseModel):
    matched: int
    missing_in_ledger: int
    missing_on_platform: int
    amount_mismatch: int
    items: int
    ledger_cents: int
    platform_cents: int


class Item(BaseModel):
    external_id: str
    status: ItemStatus
    ledger_amount_cents: int | None
    platform_amount_cents: int | None


class Run(BaseModel):
    run_id: str
    platform: str
    status: RunStatus
    window: Window
    totals: Totals | None
    digest: str | None
    failure_reason: str | None
    pages_fetched: int
    retries: int
    created_at: str
    finished_at: str | None
    items: list[Item]


class PlatformStatus(BaseModel):
    platform: str
    status: Literal["reconciled", "discrepancies", "failed", "never_run"]
    last_run_id: str | None
    finished_at: str | None
    discrepancies: int


class ReconciliationStatus(BaseModel):
    overall_status: Literal["reconciled", "discrepancies", "failed", "never_run"]
    platforms: list[PlatformStatus]


class ConnectionSaved(BaseModel):
    platform: str
    status: Literal["saved"]
