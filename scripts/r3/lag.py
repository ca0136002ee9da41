"""Attribution lag under sustained load: from an event accepted to its attribution result visible.

Every accepted webhook commits one ``attribution_recompute`` outbox row with its event; the recompute
that covers it marks the row completed in the transaction that writes the results, so the row turns
completed for other sessions exactly when the results do. An observer in its own process (the
generator's event loop must not share its interpreter) polls the watched tenants' rows and records,
for each row seen completed for the first time, ``clock_timestamp() - created_at`` on the database's
own clock: the lag of that event, late by at most one poll interval (the resolution, reported).
Rows still pending when a step is judged count with their age so far (a lower bound: ``not_visible``).

The observer runs through the whole sustained sweep, so events of one step that finish during the
next are still timed; a tenant leaves the poll once its step is over and its outbox is drained.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.core.tenancy import TenantContext
from scripts.r3.database import runtime_engine

POLL_S = 0.2
# A row committed later than a higher id (the sequence hands out ids before commit) must not be
# skipped: the low-water mark only passes completed rows at least this old.
LOW_MARGIN_S = 1.0
ROWS_SQL = text(
    "SELECT id, extract(epoch FROM clock_timestamp() - created_at)::float8 AS age_s, completed_at IS NOT NULL AS done "
    "FROM outbox WHERE tenant_id = :tenant_id AND kind = 'attribution_recompute' AND id > :low ORDER BY id"
)


PENDING_SQL = text("SELECT count(*) FROM outbox WHERE tenant_id = :tenant_id AND completed_at IS NULL")


def outbox_pending(engine: Engine, tenant_ids: list[uuid.UUID]) -> int:
    """Outbox rows of these tenants not yet completed (a partial index answers it: cheap between steps)."""
    pending = 0
    for tenant_id in tenant_ids:
        with tenant_transaction_sync(TenantContext(tenant_id), engine) as conn:
            pending += int(conn.execute(PENDING_SQL, {"tenant_id": tenant_id}).scalar_one())
    return pending


@dataclass
class StepLags:
    """Seconds from accepted to visible for a step's events; ``pending_s`` holds the ages of those not yet
    visible (lower bounds of their lag)."""

    lags_s: list[float] = field(default_factory=list)
    pending_s: list[float] = field(default_factory=list)


def nearest_rank(values: list[float], percentile: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * percentile // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]


def lag_stats(lags: StepLags, poll_s: float = POLL_S) -> dict[str, Any]:
    """Per-step figures; events not yet visible count at their age so far, so a stuck backlog raises p99."""
    values = lags.lags_s + lags.pending_s
    if not values:
        return {"attribution_lag_p50_ms": None, "attribution_lag_p99_ms": None, "attribution_lag_events": 0}
    return {
        "attribution_lag_p50_ms": round(nearest_rank(values, 50) * 1000, 1),
        "attribution_lag_p99_ms": round(nearest_rank(values, 99) * 1000, 1),
        "attribution_lag_max_ms": round(max(values) * 1000, 1),
        "attribution_lag_events": len(values),
        "attribution_lag_not_visible": len(lags.pending_s),
        "attribution_lag_resolution_ms": round(poll_s * 1000, 1),
    }


@dataclass
class _Watch:
    step: int
    low: int = 0
    seen: set[int] = field(default_factory=set)
    pending: dict[int, float] = field(default_factory=dict)  # id -> age (s) at the last poll


def _poll(conn: Any, tenant_id: uuid.UUID, watch: _Watch, lags: StepLags) -> None:
    rows = conn.execute(ROWS_SQL, {"tenant_id": tenant_id, "low": watch.low}).all()
    advancing = True
    for row in rows:
        if row.done:
            watch.pending.pop(row.id, None)
            if row.id not in watch.seen:
                watch.seen.add(row.id)
                lags.lags_s.append(float(row.age_s))
            if advancing and row.age_s >= LOW_MARGIN_S:
                watch.low = row.id
            else:
                advancing = False
        else:
            advancing = False
            watch.pending[row.id] = float(row.age_s)
    watch.seen = {i for i in watch.seen if i > watch.low}


def _snapshot(watches: dict[uuid.UUID, _Watch], lags: dict[int, StepLags]) -> dict[int, StepLags]:
    out = {step: StepLags(list(found.lags_s), []) for step, found in lags.items()}
    for watch in watches.values():
        out.setdefault(watch.step, StepLags()).pending_s += list(watch.pending.values())
    return out


def _observe(pipe: Pipe, dsn: str, poll_s: float) -> None:
    """The observer process: commands in, snapshots out (see LagObserver)."""
    engine = runtime_engine(dsn)
    engine.connect().close()  # connected before the first step starts
    watches: dict[uuid.UUID, _Watch] = {}
    lags: dict[int, StepLags] = {}
    closed: set[int] = set()
    finish_by: float | None = None
    pipe.send("ready")
    while True:
        while pipe.poll():
            command, *payload = pipe.recv()
            if command == "watch":
                step, tenant_ids = payload
                lags.setdefault(step, StepLags())
                watches.update({tenant: _Watch(step) for tenant in tenant_ids})
            elif command == "close":
                closed.add(payload[0])
            elif command == "snapshot":
                pipe.send(_snapshot(watches, lags))
            elif command == "finish":
                closed.update(lags)
                finish_by = time.monotonic() + float(payload[0])
        started = time.monotonic()
        for tenant_id, watch in list(watches.items()):
            with tenant_transaction_sync(TenantContext(tenant_id), engine) as conn:
                _poll(conn, tenant_id, watch, lags[watch.step])
            if watch.step in closed and not watch.pending and finish_by is None:
                # The step's traffic is over and its rows are visible; rows still uncommitted then
                # would be a lost event, which the step's exact counts catch.
                del watches[tenant_id]
        if finish_by is not None and (not any(w.pending for w in watches.values()) or time.monotonic() > finish_by):
            pipe.send(_snapshot(watches, lags))
            engine.dispose()
            return
        time.sleep(max(0.0, poll_s - (time.monotonic() - started)))


class LagObserver:
    """The parent's handle on the observer process (started with ``spawn``: no inherited sockets)."""

    def __init__(self, dsn: str, poll_s: float = POLL_S) -> None:
        self.poll_s = poll_s
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_observe, args=(child, dsn, poll_s), name="r3-lag-observer")

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def __enter__(self) -> LagObserver:
        self._process.start()
        # Its start-up (imports, a connection) must not overlap the first step: the generator would
        # share the machine with it and start requests late.
        if not self._pipe.poll(60) or self._pipe.recv() != "ready":
            self._process.terminate()
            raise RuntimeError(f"lag observer did not start (exit code {self._process.exitcode})")
        return self

    def __exit__(self, *_: object) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=10)

    def watch(self, step: int, tenant_ids: list[uuid.UUID]) -> None:
        self._pipe.send(("watch", step, tenant_ids))

    def close(self, step: int) -> None:
        """The step's traffic is over: its tenants leave the poll once drained."""
        self._pipe.send(("close", step))

    def snapshot(self, timeout_s: float = 30.0) -> dict[int, StepLags]:
        self._pipe.send(("snapshot",))
        return self._receive(timeout_s)

    def finish(self, drain_timeout_s: float) -> dict[int, StepLags]:
        """Wait until every watched event is visible (or the timeout passed); the final figures."""
        self._pipe.send(("finish", drain_timeout_s))
        return self._receive(drain_timeout_s + 30.0)

    def _receive(self, timeout_s: float) -> dict[int, StepLags]:
        if not self._pipe.poll(timeout_s):
            raise RuntimeError(f"lag observer silent for {timeout_s:g} s (exit code {self._process.exitcode})")
        answer: dict[int, StepLags] = self._pipe.recv()
        return answer
