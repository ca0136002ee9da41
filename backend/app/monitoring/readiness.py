"""Readiness checks: each returns (ok, detail) so the endpoint can say which one failed."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import anyio
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.db import async_engine
from app.core.roles import RUNTIME_ROLE
from app.core.settings import get_settings
from app.core.tenancy import CONTEXT_GUC, SET_CONTEXT_SQL, TenantContext

REPO_ROOT = Path(__file__).resolve().parents[3]

UNFORCED_TENANT_TABLES_SQL = text(
    """
    SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity AS forced
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
      AND EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
    """
)


IDENTITY_SQL = text("SELECT current_user AS user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")


@dataclass
class CheckReport:
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, name: str, ok: bool, **detail: Any) -> None:
        self.checks[name] = {"ok": ok, **detail}

    @property
    def failed(self) -> list[str]:
        return [name for name, result in self.checks.items() if not result["ok"]]

    def body(self) -> dict[str, Any]:
        return {"status": "unready" if self.failed else "ready", "failed": self.failed, "checks": self.checks}


@lru_cache(maxsize=1)
def migration_head() -> str:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise RuntimeError("no migration head found")
    return head


async def _identity(conn: AsyncConnection, report: CheckReport) -> None:
    row = (await conn.execute(IDENTITY_SQL)).one()
    ok = row.user == RUNTIME_ROLE and not row.rolsuper and not row.rolbypassrls
    report.record("database", ok, user=row.user, rolsuper=row.rolsuper, rolbypassrls=row.rolbypassrls)


async def _migrations(conn: AsyncConnection, report: CheckReport) -> None:
    current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()
    head = migration_head()
    report.record("migrations", current == head, current=current, head=head)


async def _rls(conn: AsyncConnection, report: CheckReport) -> None:
    rows = (await conn.execute(UNFORCED_TENANT_TABLES_SQL)).all()
    unforced = sorted(r.relname for r in rows if not r.forced)
    report.record("rls_forced", bool(rows) and not unforced, tenant_tables=len(rows), not_forced=unforced)


async def _guc_round_trip(report: CheckReport) -> None:
    """The context this process signs verifies in the database (its key id is in
    tenant_context_keys: a ring rotated without syncing the database fails here, not silently as
    empty answers), and it ends with its transaction."""
    probe = TenantContext(uuid.uuid4(), "health-probe")
    async with async_engine().begin() as conn:
        await conn.execute(SET_CONTEXT_SQL, probe.as_params())
        seen = (await conn.execute(text("SELECT app_current_tenant()"))).scalar_one()
    async with async_engine().begin() as conn:
        after = (await conn.execute(text(f"SELECT current_setting('{CONTEXT_GUC}', true)"))).scalar_one()
    verified = seen == probe.tenant_id
    report.record("tenant_guc", verified and not after, verified=verified, leaked=bool(after))


OUTBOX_SQL = text("SELECT pending, oldest_pending_age_s FROM metrics_outbox()")


async def _outbox(conn: AsyncConnection, report: CheckReport) -> None:
    """Work accepted but not sent for longer than the setting: attribution is not moving."""
    row = (await conn.execute(OUTBOX_SQL)).one()
    limit = get_settings().outbox_max_pending_age_s
    report.record(
        "outbox",
        row.oldest_pending_age_s <= limit,
        pending=row.pending,
        oldest_pending_age_s=round(row.oldest_pending_age_s, 3),
        limit_s=limit,
    )


async def readiness() -> CheckReport:
    report = CheckReport()
    try:
        async with async_engine().connect() as conn:
            await _identity(conn, report)
            await _migrations(conn, report)
            await _rls(conn, report)
            await _outbox(conn, report)
        await _guc_round_trip(report)
    except Exception as exc:  # any failure to reach the DB is the answer, not a 500
        report.record("database", False, error=f"{type(exc).__name__}: {_first_line(exc)}")
    return report


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


@dataclass
class WorkerProbeCache:
    """The last worker probe outcome, reused briefly so health polling does not flood the queue."""

    at: float = 0.0
    body: dict[str, Any] | None = None

    def fresh(self, max_age_s: float) -> dict[str, Any] | None:
        if self.body is not None and time.monotonic() - self.at <= max_age_s:
            return self.body
        return None

    def store(self, body: dict[str, Any]) -> None:
        self.at, self.body = time.monotonic(), body


class ProbeTimeout(Exception):
    """The probe task got no reply before the wall-clock deadline."""


def wait_ready(result: Any, timeout_s: float, interval_s: float = 0.02) -> Any:
    """Wait for a Celery result against a wall-clock deadline.

    ``AsyncResult.get(timeout=...)`` on a polling backend adds up only its sleeps, not the time
    each poll's query takes, so a 2 s timeout measured 4-8 s here; a health answer must be bounded.
    """
    deadline = time.monotonic() + timeout_s
    while not result.ready():
        if time.monotonic() >= deadline:
            raise ProbeTimeout
        time.sleep(interval_s)
    return result.get(timeout=0, propagate=True)


def probe_worker(timeout_s: float) -> dict[str, Any]:
    """Send a real probe task through the broker and wait for its result (blocking; run in a thread)."""
    from app.worker.celery_app import PROBE_TASK, get_celery_app

    started = time.perf_counter()
    try:
        result = get_celery_app().send_task(PROBE_TASK, queue="housekeeping", expires=timeout_s)
        reply = wait_ready(result, timeout_s)
    except Exception as exc:
        return worker_unready(f"{_failure_reason(exc)} within {timeout_s}s", started)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    checks = {
        "worker": {"ok": True, "round_trip_ms": elapsed_ms, "worker": reply.get("hostname")},
        "outbox_relay": relay_check(reply.get("relay"), get_settings().outbox_relay_stale_after_s),
    }
    failed = [name for name, check in checks.items() if not check["ok"]]
    return {"status": "unready" if failed else "ready", "failed": failed, "checks": checks}


def relay_check(relay: dict[str, Any] | None, stale_after_s: float) -> dict[str, Any]:
    """The answering worker's relay: fine while its last successful pass is recent."""
    if relay is None:
        return {"ok": False, "error": "this worker's outbox relay never completed a pass"}
    ok = relay["beat_age_s"] <= stale_after_s
    check: dict[str, Any] = {"ok": ok, "beat_age_s": round(relay["beat_age_s"], 3), "passes": relay["passes"]}
    if relay.get("last_error"):
        check.update(last_error=relay["last_error"], error_age_s=round(relay["error_age_s"], 3))
    if not ok:
        check["error"] = f"no successful relay pass for {relay['beat_age_s']:.0f} s (limit {stale_after_s:g} s)"
    return check


async def probe_worker_bounded(timeout_s: float, grace_s: float = 1.0) -> dict[str, Any]:
    """``probe_worker`` in a thread, answered within ``timeout_s + grace_s`` whatever it blocks on.

    The deadline inside the probe covers the wait for a reply; this bound also covers a publish or
    a result-backend query stuck on a broken connection. The thread is abandoned, not killed.
    """
    started = time.perf_counter()
    with anyio.move_on_after(timeout_s + grace_s):
        return await anyio.to_thread.run_sync(probe_worker, timeout_s, abandon_on_cancel=True)
    return worker_unready(f"no reply within {timeout_s}s (probe blocked)", started)


def worker_unready(error: str, started: float) -> dict[str, Any]:
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return {
        "status": "unready",
        "failed": ["worker"],
        "checks": {"worker": {"ok": False, "error": error, "elapsed_ms": elapsed_ms}},
    }


def _failure_reason(exc: BaseException) -> str:
    return "no reply" if isinstance(exc, ProbeTimeout) else type(exc).__name__
