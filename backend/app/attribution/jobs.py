"""Attribution job lifecycle (worker side): start, succeed, fail, or time out with the fallback.

Every transition is a guarded UPDATE, so a task delivered twice cannot finish a job twice, and a
timed-out job is never overwritten by a late result.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from app.attribution import bayesian, last_touch
from app.outbox import relay as outbox

FALLBACK_EVENT = "deterministic_last_touch"

START_SQL = text(
    """
    UPDATE attribution_jobs
    SET status = 'running', started_at = now(), deadline_at = now() + make_interval(secs => :deadline_s)
    WHERE id = :job_id AND (status = 'queued' OR (status = 'running' AND deadline_at < now()))
    RETURNING model, params
    """
)
FINISH_SQL = text(
    """
    UPDATE attribution_jobs SET status = :status, result = CAST(:result AS jsonb), error = :error,
           fallback_event = :fallback, finished_at = now()
    WHERE id = :job_id AND status IN ('queued', 'running')
    """
)
DAILY_REVENUE_SQL = text(
    """
    SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, sum(revenue_cents) AS revenue
    FROM attribution_events
    WHERE event_type = 'conversion' AND occurred_at >= :since
    GROUP BY 1
    """
)
DAILY_TOUCHES_SQL = text(
    """
    SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, channel, count(*) AS touches
    FROM attribution_events
    WHERE event_type = 'touchpoint' AND occurred_at >= :since
    GROUP BY 1, 2
    """
)


def start(conn: Connection, job_id: uuid.UUID, deadline_s: float) -> tuple[str, dict[str, Any]] | None:
    row = conn.execute(START_SQL, {"job_id": job_id, "deadline_s": deadline_s}).first()
    return (row.model, dict(row.params)) if row else None


def finish(
    conn: Connection,
    job_id: uuid.UUID,
    status: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    fallback: str | None = None,
) -> bool:
    changed = conn.execute(
        FINISH_SQL,
        {
            "job_id": job_id,
            "status": status,
            "result": json.dumps(result) if result is not None else None,
            "error": error,
            "fallback": fallback,
        },
    ).rowcount
    outbox.complete(conn, "attribution_job", job_id)
    return bool(changed)


def time_out(conn: Connection, tenant_id: uuid.UUID, job_id: uuid.UUID, reason: str, lookback_days: int) -> bool:
    """Record the timeout and serve last-touch instead: recompute it now so it is current."""
    rows = last_touch.recompute(conn, tenant_id, lookback_days)
    return finish(
        conn,
        job_id,
        "timed_out",
        result={"served_model": "last_touch", "last_touch_rows": rows},
        error=reason,
        fallback=FALLBACK_EVENT,
    )


def training_data(conn: Connection, window_days: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Daily revenue and per-channel touch counts over the window, zero-filled."""
    since = datetime.now(UTC) - timedelta(days=window_days)
    revenue = {r.day: float(r.revenue or 0) for r in conn.execute(DAILY_REVENUE_SQL, {"since": since})}
    touches = list(conn.execute(DAILY_TOUCHES_SQL, {"since": since}))
    channels = sorted({r.channel for r in touches})
    days: list[date] = sorted(set(revenue) | {r.day for r in touches})
    index = {day: i for i, day in enumerate(days)}
    x = np.zeros((len(days), len(channels)))
    for r in touches:
        x[index[r.day], channels.index(r.channel)] = r.touches
    y = np.array([revenue.get(day, 0.0) for day in days])
    return x, y, channels


def run_bayesian_on(x: np.ndarray, y: np.ndarray, channels: list[str], params: dict[str, Any]) -> dict[str, Any]:
    if len(channels) == 0 or len(y) < 2:
        raise ValueError("not enough data: need touchpoints and conversions on at least two days")
    posterior = bayesian.fit(
        x,
        y,
        channels,
        draws=int(params.get("draws", 1000)),
        warmup=int(params.get("warmup", 500)),
        chains=int(params.get("chains", 4)),
        seed=int(params.get("seed", 0)),
    )
    return {"model": "bayesian", "days": len(y), **posterior.summary()}
