"""The outbox relay: turns committed outbox rows into broker messages, and re-sends lost work.

Runs in every worker's main process (``app.outbox.relay_step``), which hands it the function that
publishes a message, so this module knows nothing of Celery. Rows are claimed with FOR UPDATE SKIP
LOCKED, so replicas never send the same row twice at once; a broker failure rolls the claim back
and the next pass retries. Recompute rows coalesce: one message per tenant however many events
arrived, none while one is in flight, and at most one per coalescing window
(OUTBOX_RECOMPUTE_COALESCE_S).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, text
from starlette.concurrency import run_in_threadpool

from app.core.db import async_engine
from app.core.settings import Settings

log = logging.getLogger(__name__)

RECOMPUTE_TASK = "attribution.recompute_last_touch"
# At most this many webhook request ids travel with one recompute (the rest are counted).
RECOMPUTE_REQUEST_IDS_MAX = 100
RUN_JOB_TASK = "attribution.run_job"
RECONCILE_TASK = "reconciliation.run"
DEADLINE_GRACE_S = 30.0

# Every tenant's pending work, through app_system's functions (migration 0017): the claim returns
# the rows it locked (ids, kinds, job ids) and holds the locks in this transaction; a tenant's new
# recompute rows wait while one of its recomputes is in flight or was sent within the coalescing
# window, since the next one covers them all (completion is by id range). So the broker carries at
# most one recompute per tenant, and a busy tenant costs a few messages a second, not one per event.
CLAIM_SQL = text("SELECT id, tenant_id, kind, payload FROM outbox_claim(:limit, :coalesce_s)")
MARK_SQL = text("SELECT outbox_mark_dispatched(CAST(:ids AS bigint[]))")
SWEEP_SQL = text("SELECT expired_jobs, redispatched FROM outbox_sweep(:after_s)")
# The relay's heartbeat (migration 0020): a successful pass at most once per HEARTBEAT_EVERY_S, and
# the error of a failed one, so a relay that stopped or keeps failing shows in the worker probe.
HEARTBEAT_EVERY_S = 1.0
HEARTBEAT_SQL = text(
    "INSERT INTO outbox_relay_heartbeats (worker, beat_at, passes) VALUES (:worker, now(), :passes) "
    "ON CONFLICT (worker) DO UPDATE SET beat_at = now(), passes = EXCLUDED.passes"
)
FAILURE_SQL = text(
    "INSERT INTO outbox_relay_heartbeats (worker, beat_at, last_error, error_at) "
    "VALUES (:worker, 'epoch', :error, now()) "
    "ON CONFLICT (worker) DO UPDATE SET last_error = EXCLUDED.last_error, error_at = now()"
)
RELAY_HEALTH_SQL = text(
    "SELECT extract(epoch FROM now() - beat_at)::float8 AS beat_age_s, passes, last_error, "
    "extract(epoch FROM now() - error_at)::float8 AS error_age_s FROM outbox_relay_heartbeats WHERE worker = :worker"
)
COMPLETE_SQL = text(
    "UPDATE outbox SET completed_at = now() WHERE kind = :kind AND payload->>:key = :work_id AND completed_at IS NULL"
)
# Which payload field names the unit of work, per kind (recomputes complete by id range instead).
PAYLOAD_KEYS = {"attribution_job": "job_id", "llm_task": "job_id", "reconciliation_run": "run_id"}


def complete(conn: Connection, kind: str, work_id: uuid.UUID) -> None:
    """Mark the outbox row of one job or run completed, inside the transaction that finished the work."""
    conn.execute(COMPLETE_SQL, {"kind": kind, "key": PAYLOAD_KEYS[kind], "work_id": str(work_id)})


@dataclass
class Dispatch:
    task: str
    args: list[Any]
    options: dict[str, Any]
    outbox_ids: list[int] = field(default_factory=list)


# Hands one message to the broker (blocking; the relay calls it from a thread).
Publish = Callable[[Dispatch], None]


def correlated(options: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """Send options with the request id the api put in the payload, as a message header (app.core.logs)."""
    return {**options, "headers": {"request_id": payload["request_id"]}} if payload.get("request_id") else options


@dataclass
class Plan:
    dispatches: list[Dispatch]
    # Rows whose payload cannot be read (a missing key, a wrong type): marked dispatched and logged,
    # never sent, so one bad row cannot stop the relay for every tenant behind it.
    malformed: list[int] = field(default_factory=list)


def _dispatch(row: Row[Any], tenant: str) -> Dispatch:
    payload = dict(row.payload or {})
    if row.kind == "llm_task":
        args = [tenant, payload["user_id"], payload["job_id"]]
        return Dispatch(payload["task_type"], args, correlated({"queue": "llm"}, payload), [row.id])
    if row.kind == "reconciliation_run":
        options = correlated({"queue": "maintenance"}, payload)
        return Dispatch(RECONCILE_TASK, [tenant, payload["run_id"]], options, [row.id])
    hard = float(payload["time_limit_s"])
    options = correlated({"queue": "attribution", "time_limit": hard}, payload)
    if float(payload["soft_time_limit_s"]) > 0:  # 0: the hard kill is the only limit
        options["soft_time_limit"] = float(payload["soft_time_limit_s"])
    return Dispatch(RUN_JOB_TASK, [tenant, payload["job_id"], hard + DEADLINE_GRACE_S], options, [row.id])


def covered_requests(payloads: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The ``request_id`` header of a recompute that covers several webhooks: their request ids, comma
    separated, the first ``RECOMPUTE_REQUEST_IDS_MAX`` of them (one long line is fine, an unbounded
    message header is not), and how many more there were."""
    ids = [str(p["request_id"]) for p in payloads if isinstance(p.get("request_id"), str)]
    if not ids:
        return {}
    headers: dict[str, Any] = {"request_id": ",".join(ids[:RECOMPUTE_REQUEST_IDS_MAX])}
    if len(ids) > RECOMPUTE_REQUEST_IDS_MAX:
        headers["request_ids_omitted"] = len(ids) - RECOMPUTE_REQUEST_IDS_MAX
    return headers


def plan(rows: Iterable[Row[Any]]) -> Plan:
    """One recompute per tenant (the highest outbox id marks what it covers, its header the webhooks'
    request ids); one message per job or run."""
    recomputes: dict[str, Dispatch] = {}
    covered: dict[str, list[dict[str, Any]]] = {}
    planned = Plan([])
    for row in rows:
        tenant = str(row.tenant_id)
        if row.kind == "attribution_recompute":
            entry = recomputes.setdefault(tenant, Dispatch(RECOMPUTE_TASK, [tenant, 0], {"queue": "attribution"}))
            entry.args[1] = max(entry.args[1], row.id)
            entry.outbox_ids.append(row.id)
            covered.setdefault(tenant, []).append(row.payload if isinstance(row.payload, dict) else {})
            continue
        try:
            planned.dispatches.append(_dispatch(row, tenant))
        except (KeyError, TypeError, ValueError):
            planned.malformed.append(row.id)
    for tenant, entry in recomputes.items():
        if headers := covered_requests(covered[tenant]):
            entry.options["headers"] = headers
    planned.dispatches[:0] = recomputes.values()
    return planned


def send(dispatches: Sequence[Dispatch], publish: Publish) -> None:
    for dispatch in dispatches:
        publish(dispatch)


async def relay_once(publish: Publish, limit: int = 1000, coalesce_s: float = 0.0) -> int:
    """Send what is pending; returns how many outbox rows were dispatched."""
    async with async_engine().begin() as conn:
        rows = (await conn.execute(CLAIM_SQL, {"limit": limit, "coalesce_s": float(coalesce_s)})).all()
        if not rows:
            return 0
        planned = plan(rows)
        if planned.malformed:
            log.error("outbox rows %s have payloads the relay cannot read: marked, not sent", planned.malformed)
        await run_in_threadpool(send, planned.dispatches, publish)
        sent = [i for d in planned.dispatches for i in d.outbox_ids]
        await conn.execute(MARK_SQL, {"ids": sent + planned.malformed})
    return len(rows)


async def sweep(settings: Settings) -> dict[str, int]:
    """Time out jobs whose worker vanished (and recompute their tenants), and send again work that
    never completed."""
    async with async_engine().begin() as conn:
        row = (await conn.execute(SWEEP_SQL, {"after_s": float(settings.outbox_redispatch_after_s)})).one()
    return {"expired_jobs": int(row.expired_jobs), "redispatched": int(row.redispatched)}


async def record_heartbeat(worker: str, passes: int) -> None:
    async with async_engine().begin() as conn:
        await conn.execute(HEARTBEAT_SQL, {"worker": worker, "passes": passes})


async def record_failure(worker: str, exc: BaseException) -> None:
    error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
    async with async_engine().begin() as conn:
        await conn.execute(FAILURE_SQL, {"worker": worker, "error": error})


async def run_relay(settings: Settings, stop: asyncio.Event, worker: str, publish: Publish) -> None:
    """The relay loop: frequent sends, a sweep every few seconds, a heartbeat every second, backoff
    when a pass fails (whose error is logged in full and recorded beside the heartbeat)."""
    sweep_every = max(1, int(5 / settings.outbox_relay_interval_s))
    delay, passes, last_beat = settings.outbox_relay_interval_s, 0, 0.0
    while not stop.is_set():
        try:
            sent = await relay_once(publish, coalesce_s=settings.outbox_recompute_coalesce_s)
            passes += 1
            if passes % sweep_every == 0:
                await sweep(settings)
            if time.monotonic() - last_beat >= HEARTBEAT_EVERY_S:
                await record_heartbeat(worker, passes)
                last_beat = time.monotonic()
            delay = 0.0 if sent else settings.outbox_relay_interval_s
        except Exception as exc:
            log.exception("outbox relay pass failed; retrying")
            with contextlib.suppress(Exception):  # the database may be what failed
                await record_failure(worker, exc)
            delay = min(max(delay * 2, settings.outbox_relay_interval_s), 5.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay or 0.001)
