from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Live(BaseModel):
    status: Literal["live"]


class Check(BaseModel):
    model_config = ConfigDict(extra="allow")

    ok: bool


class HealthReport(BaseModel):
    status: Literal["ready", "unready"]
    failed: list[str]
    checks: dict[str, Check]
    cached: bool | None = None
