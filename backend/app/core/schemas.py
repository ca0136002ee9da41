"""Shapes shared by every endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is our stable machine-readable reason."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    code: str
    instance: str | None = None


def iso_or_none(value: datetime | None) -> str | None:
    """A timestamp as the contract spells it (RFC 3339), or None when there is none yet."""
    return value.isoformat() if value else None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry for error statuses; the contract renders them as problem+json."""
    return {status: {"model": Problem, "description": "problem details"} for status in statuses}
