"""Housekeeping prunes finished work older than its retention, keeps what is newer, never touches a
ledger, works in bounded batches, never waits on a row lock, and shows what it removed on /metrics.

Rows are planted as the cluster's superuser, dated half an hour back, and pruned with a ten-minute
retention: the topology's own worker prunes with its default retentions (an hour and more), so it
never races these tests for their rows. Each property has a control: the same check turns red when
a fresh row or a ledger row is pruned, and app_system itself cannot delete a ledger row.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import ProgrammingError

from app.maintenance.housekeeping import KINDS, Policy, prune_batch, prune_kind, run_once
from app.tenants.service import create_tenant
from scripts.topology import Topology

from .conftest import engine_for, own_topology, superuser_dsn

OLD = "now() - interval '30 minutes'"
RETENTION_S = 600.0
POLICY = Policy(retention_s=dict.fromkeys(KINDS, RETENTION_S), batch_size=3, max_batches=1000)
FUNCTION_CAP = 5000  # housekeeping_prune removes at most this many rows per call, whatever it is asked


@pytest.fixture(scope="module")
def superuser(topology: Topology) -> Iterator[Engine]:
    engine = engine_for(superuser_dsn(topology))
    yield engine
    engine.dispose()


@dataclass
class Planted:
    """Rows by table: those that must go (``old``), must stay (``fresh``), and ledgers (``kept``)."""

    old: dict[str, list[str]] = field(default_factory=dict)
    fresh: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)


# Each table's key as text, so one query shape checks every table.
KEYS = {
    "outbox": "id::text",
    "kombu_message": "id::text",
    "celery_taskmeta": "id::text",
    "llm_response_cache": "cache_key::text",
    "attribution_jobs": "id::text",
    "llm_jobs": "id::text",
    "investigations": "id::text",
    "llm_api_calls": "id::text",
    "llm_distillation_records": "id::text",
    "llm_budget_reservations": "id::text",
    "attribution_events": "id::text",
    "dead_letter_events": "id::text",
}


def one(conn: Connection, sql: str, **params: object) -> str:
    return str(conn.execute(text(sql), params).scalar_one())


def plant(runtime_engine: Engine, superuser: Engine) -> Planted:
    """One tenant's worth of every kind, old and fresh, plus old ledger and evidence rows."""
    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, f"housekeeping-{uuid.uuid4().hex[:8]}")
    t, u, p = tenant.tenant_id, tenant.user_id, Planted()
    with superuser.begin() as conn:

        def outbox(kind: str, completed: str | None) -> str:
            done = completed or "NULL"
            return one(
                conn,
                f"INSERT INTO outbox (tenant_id, kind, created_at, dispatched_at, completed_at) "
                f"VALUES (:t, :kind, {OLD}, {OLD}, {done}) RETURNING id",
                t=t,
                kind=kind,
            )

        # The newest recompute row is the tenant's data watermark (the LLM cache key hashes it in): it
        # stays however old; the older one goes.
        p.old["outbox"] = [outbox("attribution_job", OLD), outbox("attribution_recompute", OLD)]
        watermark = outbox("attribution_recompute", OLD)
        p.fresh["outbox"] = [outbox("attribution_job", "now()"), outbox("llm_task", None), watermark]

        queue = one(conn, "INSERT INTO kombu_queue (name) VALUES (:n) RETURNING id", n=f"hk-{uuid.uuid4().hex[:8]}")

        def message(visible: bool, stamp: str) -> str:
            return one(
                conn,
                f"INSERT INTO kombu_message (visible, timestamp, payload, version, queue_id) "
                f"VALUES (:v, {stamp}, '{{}}', 1, :q) RETURNING id",
                v=visible,
                q=queue,
            )

        p.old["kombu_message"] = [message(False, "localtimestamp - interval '30 minutes'")]
        p.fresh["kombu_message"] = [message(False, "localtimestamp"), message(True, "NULL")]

        def result(stamp: str) -> str:
            return one(
                conn,
                f"INSERT INTO celery_taskmeta (task_id, status, date_done) VALUES (:id, 'SUCCESS', {stamp}) RETURNING id",
                id=str(uuid.uuid4()),
            )

        p.old["celery_taskmeta"] = [result("localtimestamp - interval '30 minutes'")]
        p.fresh["celery_taskmeta"] = [result("localtimestamp")]

        def cached(stamp: str) -> str:
            return one(
                conn,
                f"INSERT INTO llm_response_cache (tenant_id, cache_key, response, created_at) "
                f"VALUES (:t, :k, '{{}}', {stamp}) RETURNING cache_key",
                t=t,
                k=uuid.uuid4().hex * 2,
            )

        p.old["llm_response_cache"] = [cached(OLD)]
        p.fresh["llm_response_cache"] = [cached("now()")]

        def job(status: str, finished: str | None) -> str:
            return one(
                conn,
                f"INSERT INTO attribution_jobs (tenant_id, model, status, created_at, finished_at) "
                f"VALUES (:t, 'last_touch', :s, {OLD}, {finished or 'NULL'}) RETURNING id",
                t=t,
                s=status,
            )

        p.old["attribution_jobs"] = [job("succeeded", OLD), job("timed_out", OLD)]
        p.fresh["attribution_jobs"] = [job("succeeded", "now()"), job("running", None)]

        call = one(
            conn,
            f"INSERT INTO llm_api_calls (tenant_id, user_id, request_id, endpoint, prompt_sha256, status, "
            f"created_at, finished_at) VALUES (:t, :u, :r, 'investigation', repeat('a', 64), 'succeeded', {OLD}, {OLD}) "
            f"RETURNING id",
            t=t,
            u=u,
            r=f"hk-{uuid.uuid4().hex}",
        )

        def llm_job(status: str, finished: str | None) -> str:
            return one(
                conn,
                f"INSERT INTO llm_jobs (tenant_id, user_id, task_type, request_id, status, call_id, created_at, "
                f"finished_at) VALUES (:t, :u, 'investigation', :r, :s, :c, {OLD}, {finished or 'NULL'}) RETURNING id",
                t=t,
                u=u,
                r=f"hk-{uuid.uuid4().hex}",
                s=status,
                c=call,
            )

        old_job = llm_job("succeeded", OLD)
        p.old["llm_jobs"] = [old_job]
        p.fresh["llm_jobs"] = [llm_job("succeeded", "now()"), llm_job("queued", None)]
        # A job's result goes with it (ON DELETE CASCADE); the call it made stays in the ledger.
        p.old["investigations"] = [
            one(
                conn,
                f"INSERT INTO investigations (tenant_id, user_id, job_id, findings, created_at) "
                f"VALUES (:t, :u, :j, '{{}}', {OLD}) RETURNING id",
                t=t,
                u=u,
                j=old_job,
            )
        ]
        p.kept["llm_api_calls"] = [call]
        p.kept["llm_distillation_records"] = [
            one(
                conn,
                f"INSERT INTO llm_distillation_records (tenant_id, user_id, call_id, kind, content, created_at) "
                f"VALUES (:t, :u, :c, 'reasoning', '{{}}', {OLD}) RETURNING id",
                t=t,
                u=u,
                c=call,
            )
        ]
        p.kept["llm_budget_reservations"] = [
            one(
                conn,
                f"INSERT INTO llm_budget_reservations (tenant_id, user_id, call_id, period_start, amount_cents, "
                f"status, created_at) VALUES (:t, :u, :c, date_trunc('month', now())::date, 1, 'settled', {OLD}) "
                f"RETURNING id",
                t=t,
                u=u,
                c=call,
            )
        ]
        p.kept["attribution_events"] = [
            one(
                conn,
                f"INSERT INTO attribution_events (tenant_id, platform, external_event_id, event_type, occurred_at, "
                f"received_at) VALUES (:t, 'stripe', :e, 'conversion', {OLD}, {OLD}) RETURNING id",
                t=t,
                e=f"hk-{uuid.uuid4().hex}",
            )
        ]
        p.kept["dead_letter_events"] = [
            one(
                conn,
                f"INSERT INTO dead_letter_events (tenant_id, platform, reason_code, payload_sha256, payload_bytes, "
                f"received_at) VALUES (:t, 'stripe', 'schema', repeat('b', 64), 1, {OLD}) RETURNING id",
                t=t,
            )
        ]
    return p


def present(superuser: Engine, table: str, keys: list[str]) -> set[str]:
    with superuser.connect() as conn:
        query = text(f"SELECT {KEYS[table]} FROM {table} WHERE {KEYS[table]} = ANY(:keys)")
        return set(conn.execute(query, {"keys": keys}).scalars())


def check_pruned(superuser: Engine, planted: Planted) -> None:
    """Every old row gone; every fresh, watermark and ledger row still there."""
    for table, keys in planted.old.items():
        assert present(superuser, table, keys) == set(), f"{table}: rows past retention were kept"
    for table, keys in [*planted.fresh.items(), *planted.kept.items()]:
        missing = set(keys) - present(superuser, table, keys)
        assert not missing, f"{table}: rows that must stay were pruned: {sorted(missing)}"


def test_old_rows_go_fresh_rows_and_ledgers_stay(runtime_engine: Engine, superuser: Engine) -> None:
    planted = plant(runtime_engine, superuser)
    removed = run_once(runtime_engine, POLICY)
    assert all(removed[kind] >= 1 for kind in KINDS), removed
    check_pruned(superuser, planted)


def test_control_the_check_catches_a_pruned_fresh_row(runtime_engine: Engine, superuser: Engine) -> None:
    """Retention zero prunes the fresh rows too (all but the watermark and unfinished work): the check says so."""
    planted = plant(runtime_engine, superuser)
    run_once(runtime_engine, Policy(dict.fromkeys(KINDS, 0.0), batch_size=1000, max_batches=1000))
    with pytest.raises(AssertionError, match="rows that must stay were pruned"):
        check_pruned(superuser, planted)


def test_control_the_check_catches_a_pruned_ledger_row(runtime_engine: Engine, superuser: Engine) -> None:
    planted = plant(runtime_engine, superuser)
    run_once(runtime_engine, POLICY)
    with superuser.begin() as conn:
        reservation = planted.kept["llm_budget_reservations"][0]
        conn.execute(text("DELETE FROM llm_budget_reservations WHERE id = :id"), {"id": reservation})
    with pytest.raises(AssertionError, match="llm_budget_reservations: rows that must stay were pruned"):
        check_pruned(superuser, planted)


@pytest.mark.parametrize("ledger", ["llm_api_calls", "llm_budget_reservations", "attribution_events"])
def test_app_system_cannot_delete_a_ledger_row(superuser: Engine, ledger: str) -> None:
    """The pruning function's owner has no DELETE on any ledger, so no bug in the function could prune
    one. (Its control: the same statement on a table app_system prunes is allowed.)"""
    with superuser.connect() as conn:
        conn.execute(text("SET ROLE app_system"))
        assert conn.execute(text("SELECT has_table_privilege('celery_taskmeta', 'DELETE')")).scalar_one()
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text(f"DELETE FROM {ledger} WHERE false"))
        conn.rollback()


@pytest.mark.parametrize("ledger", ["llm_api_calls", "llm_distillation_records", "attribution_events"])
def test_the_runtime_cannot_delete_a_ledger_row(runtime_engine: Engine, ledger: str) -> None:
    """Nor can app_user itself (migration 0023 took DELETE on the ledgers from app_rw). Its control:
    the same statement on a table the runtime does delete from is allowed."""
    with runtime_engine.connect() as conn:
        conn.execute(text("DELETE FROM attribution_results WHERE false"))
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text(f"DELETE FROM {ledger} WHERE false"))


def plant_consumed_messages(superuser: Engine, count: int) -> str:
    """``count`` consumed broker messages, half an hour old, on a queue of their own; returns its id."""
    with superuser.begin() as conn:
        queue = one(conn, "INSERT INTO kombu_queue (name) VALUES (:n) RETURNING id", n=f"hk-{uuid.uuid4().hex[:8]}")
        conn.execute(
            text(
                "INSERT INTO kombu_message (visible, timestamp, payload, version, queue_id) "
                "SELECT false, localtimestamp - interval '30 minutes', '{}', 1, :q FROM generate_series(1, :n)"
            ),
            {"q": queue, "n": count},
        )
    return queue


def remaining(superuser: Engine, queue: str) -> int:
    with superuser.connect() as conn:
        return int(one(conn, "SELECT count(*) FROM kombu_message WHERE queue_id = :q", q=queue))


def test_batches_are_bounded(runtime_engine: Engine, superuser: Engine) -> None:
    """A run works in batches of the configured size, and the function caps a batch whatever it is
    asked. (Other kombu rows may be pruned alongside by the topology's own traffic: the counts are
    checked on this queue's rows, which only these calls can reach.)"""
    queue = plant_consumed_messages(superuser, FUNCTION_CAP + 150)
    assert prune_batch(runtime_engine, "broker_messages", RETENTION_S, 10 * FUNCTION_CAP) <= FUNCTION_CAP
    assert remaining(superuser, queue) >= 150
    queue = plant_consumed_messages(superuser, 250)
    batches = prune_kind(runtime_engine, "broker_messages", Policy(dict.fromkeys(KINDS, RETENTION_S), 100, 1000))
    assert all(n <= 100 for n in batches) and len(batches) >= 3, batches
    assert remaining(superuser, queue) == 0


def test_control_a_run_stops_after_its_share_of_batches(runtime_engine: Engine, superuser: Engine) -> None:
    queue = plant_consumed_messages(superuser, 250)
    batches = prune_kind(runtime_engine, "broker_messages", Policy(dict.fromkeys(KINDS, RETENTION_S), 50, 2))
    assert batches == [50, 50]
    assert remaining(superuser, queue) >= 150


def test_a_batch_never_waits_for_a_row_lock(runtime_engine: Engine, superuser: Engine) -> None:
    """A row another transaction holds is skipped, not waited for; once released, the next run takes it."""
    queue = plant_consumed_messages(superuser, 3)
    with superuser.connect() as holder:
        held = one(holder, "SELECT id FROM kombu_message WHERE queue_id = :q ORDER BY id LIMIT 1 FOR UPDATE", q=queue)
        finished = threading.Event()

        def prune() -> None:
            prune_kind(runtime_engine, "broker_messages", POLICY)
            finished.set()

        threading.Thread(target=prune, daemon=True).start()
        assert finished.wait(10), "the prune waited for the held row"
        assert remaining(superuser, queue) == 1
        holder.rollback()
    assert held
    prune_kind(runtime_engine, "broker_messages", POLICY)
    assert remaining(superuser, queue) == 0


def test_only_the_runtime_may_call_it_and_only_for_known_kinds(runtime_engine: Engine, ops_engine: Engine) -> None:
    with ops_engine.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
        conn.execute(text("SELECT housekeeping_prune('outbox', 0, 1)"))
    with runtime_engine.connect() as conn, pytest.raises(Exception, match="unknown housekeeping kind"):
        conn.execute(text("SELECT housekeeping_prune('llm_api_calls', 0, 1)"))


def metric(api_url: str, kind: str) -> float:
    body = httpx.get(f"{api_url}/metrics", timeout=15).text
    prefix = f'housekeeping_removed_total{{kind="{kind}"}} '
    values = [float(line.removeprefix(prefix)) for line in body.splitlines() if line.startswith(prefix)]
    return values[0] if values else 0.0


def test_metrics_count_what_was_removed(runtime_engine: Engine, superuser: Engine, topology: Topology) -> None:
    before = metric(topology.api_url, "broker_messages")
    plant_consumed_messages(superuser, 7)
    removed = sum(prune_kind(runtime_engine, "broker_messages", POLICY))
    assert removed >= 7
    assert metric(topology.api_url, "broker_messages") >= before + removed


# -- the worker's own schedule ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ticking(test_artifacts: Path) -> Iterator[Topology]:
    """A topology whose worker runs housekeeping every second with a retention of zero for the broker."""
    yield from own_topology(
        test_artifacts, "housekeeping", HOUSEKEEPING_INTERVAL_S="1", RETENTION_BROKER_S="0", RETENTION_OUTBOX_S="0"
    )


def test_the_worker_prunes_on_its_own(ticking: Topology) -> None:
    """Consumed broker messages (the worker's own probes) disappear without anyone asking, and /metrics
    counts them."""
    for _ in range(3):
        answer = httpx.get(f"{ticking.api_url}/health/worker?fresh=true", timeout=15)
        assert answer.status_code == 200, answer.text
    superuser = engine_for(superuser_dsn(ticking))
    try:
        with superuser.connect() as conn:
            # Zero when the worker has already removed every message, probes included.
            mark = int(one(conn, "SELECT coalesce(max(id), 0) FROM kombu_message"))
        for _ in range(30):
            with superuser.connect() as conn:
                consumed = int(one(conn, "SELECT count(*) FROM kombu_message WHERE NOT visible AND id <= :m", m=mark))
            if consumed == 0:
                break
            time.sleep(1)
        assert consumed == 0, f"{consumed} consumed messages left"
        assert metric(ticking.api_url, "broker_messages") >= 3
    finally:
        superuser.dispose()
