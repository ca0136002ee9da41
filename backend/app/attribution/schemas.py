from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

JobStatus = Literal["queued", "running", "succeeded", "failed", "timed_out"]
ModelName = Literal["last_touch", "bayesian"]


class JobCreated(BaseModel):
    job_id: str
    status: JobStatus
    model: ModelName


class Job(BaseModel):
    job_id: str
    model: ModelName
    status: JobStatus
    params: dict[str, Any]
    result: dict[str, Any] | None
    fallback_event: str | None
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class Window(BaseModel):
    start: str
    end: str


class ChannelResult(BaseModel):
    channel: str
    revenue_cents: int
    conversions: int


class Results(BaseModel):
    model: ModelName
    served_model: ModelName
    fallback_event: str | None
    window: Window
    channels: list[ChannelResult]
    total_revenue_cents: int
    job_id: str | None = None
    posterior: dict[str, Any] | None = None
