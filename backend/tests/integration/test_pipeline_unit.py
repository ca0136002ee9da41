"""The pipelined tenant statement (each step of the LLM boundary): one round trip, all or nothing,
and a pooled connection handed back exactly as it was taken.

Round trips are counted in the wire protocol (libpq's trace of what the client sent), not timed:
each wait for the server is one Sync message.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import Engine, text

from app.core.db import pipelined, statement_sync, tenant_statement_sync, tenant_transaction_sync
from app.core.tenancy import CONTEXT_GUC, SET_CONTEXT_SQL, TenantContext
from app.tenants.service import create_tenant
from scripts.topology import Topology

from ..conftest import one_connection_pool

pytestmark = pytest.mark.integration

INSERT_EVENT = pipelined(
    "INSERT INTO attribution_events (tenant_id, platform, external_event_id, event_type, occurred_at) "
    "VALUES (:t, 'stripe', :e, 'conversion', now()) RETURNING external_event_id"
)
# One statement that writes and then fails: the server must undo its write.
INSERT_THEN_FAIL = pipelined(
    "WITH written AS (INSERT INTO attribution_events (tenant_id, platform, external_event_id, event_type, "
    "occurred_at) VALUES (:t, 'stripe', :e, 'conversion', now()) RETURNING 1) SELECT 1 / 0 FROM written"
)
COUNT_EVENT = text("SELECT count(*) FROM attribution_events WHERE external_event_id = :e")


@contextmanager
def syncs_sent(conn: psycopg.Connection[object]) -> Iterator[list[int]]:
    """Count the Sync messages the client sends while the block runs (one per wait for the server);
    the count is in the list once the block has ended."""
    counted: list[int] = []
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "trace"
        with path.open("w") as trace:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                yield counted
            finally:
                conn.pgconn.untrace()  # flushes libpq's buffer
        sent = [line.split("\t") for line in path.read_text().splitlines()]
        counted.append(sum(1 for fields in sent if fields[0] == "F" and fields[2:3] == ["Sync"]))


@pytest.fixture(scope="module")
def tenant(runtime_engine: Engine) -> TenantContext:
    """A tenant of this module's own: the rows written here must not change other tests' counts."""
    with runtime_engine.begin() as conn:
        return create_tenant(conn, f"pipeline-{uuid.uuid4().hex[:6]}").context


class Unadaptable:
    """A parameter psycopg cannot send: the statement fails in the client, after the context was queued."""


def test_a_statement_is_one_round_trip(topology: Topology, tenant: TenantContext) -> None:
    assert topology.dsns is not None
    ctx = tenant
    with one_connection_pool(topology.dsns.runtime_sync) as engine:
        raw = engine.raw_connection()
        conn = raw.driver_connection
        assert isinstance(conn, psycopg.Connection)
        raw.close()  # back to the pool: the call below checks out this same connection
        with syncs_sent(conn) as ours:
            tenant_statement_sync(ctx, INSERT_EVENT, {"t": ctx.tenant_id, "e": f"one-trip-{uuid.uuid4().hex}"}, engine)
        # Control: the same statements in psycopg's own transaction, in pipeline mode, wait three times
        # (after its BEGIN, at the commit, at the pipeline's end), so the count above can tell.
        with syncs_sent(conn) as theirs, conn.pipeline():
            conn.execute(pipelined(SET_CONTEXT_SQL), ctx.as_params())
            conn.execute(INSERT_EVENT, {"t": ctx.tenant_id, "e": f"control-{uuid.uuid4().hex}"})
            conn.commit()
    assert ours == [1], f"the statement waited for the server {ours} times"
    assert theirs == [3], f"the control waited {theirs} times; the counter may not see Syncs"


def test_the_rows_come_back_committed(runtime_engine: Engine, tenant: TenantContext) -> None:
    ctx, event = tenant, f"durable-{uuid.uuid4().hex}"
    rows = tenant_statement_sync(ctx, INSERT_EVENT, {"t": ctx.tenant_id, "e": event}, runtime_engine)
    assert [row.external_event_id for row in rows] == [event]
    with tenant_transaction_sync(ctx, runtime_engine) as conn:  # another connection of the pool
        assert conn.execute(COUNT_EVENT, {"e": event}).scalar_one() == 1


@pytest.mark.parametrize("failure", ["refused by the server", "failed in the client"])
def test_a_failed_statement_leaves_nothing_and_a_clean_connection(
    topology: Topology, tenant: TenantContext, failure: str
) -> None:
    """Refused by the server: the statement's own write is undone. Failed in the client: the context
    was queued and is committed alone at the Sync, which leaves nothing behind (it is transaction-local)."""
    assert topology.dsns is not None
    ctx, event = tenant, f"failed-{uuid.uuid4().hex}"
    statement, params = (
        (INSERT_THEN_FAIL, {"t": ctx.tenant_id, "e": event})
        if failure == "refused by the server"
        else (INSERT_EVENT, {"t": ctx.tenant_id, "e": Unadaptable()})
    )
    with one_connection_pool(topology.dsns.runtime_sync) as engine:
        with pytest.raises(psycopg.Error):
            tenant_statement_sync(ctx, statement, params, engine)
        raw = engine.raw_connection()  # the one pooled connection, handed back
        conn = raw.driver_connection
        assert isinstance(conn, psycopg.Connection)
        assert conn.autocommit is False
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
        raw.close()
        with engine.connect() as conn:
            assert conn.execute(text(f"SELECT current_setting('{CONTEXT_GUC}', true)")).scalar_one() in (
                "",
                None,
            )
        with tenant_transaction_sync(ctx, engine) as conn:
            assert conn.execute(COUNT_EVENT, {"e": event}).scalar_one() == 0


def test_a_statement_carrying_its_own_context_is_one_round_trip_and_committed(
    topology: Topology, runtime_engine: Engine, tenant: TenantContext
) -> None:
    """statement_sync: the LLM boundary's steps, whose functions take the signed context as an argument."""
    assert topology.dsns is not None
    ctx, event = tenant, f"carried-{uuid.uuid4().hex}"
    carried = pipelined(
        "WITH context AS (SELECT set_config('" + CONTEXT_GUC + "', :context, true)) "
        "INSERT INTO attribution_events (tenant_id, platform, external_event_id, event_type, occurred_at) "
        "SELECT :t, 'stripe', :e, 'conversion', now() FROM context RETURNING external_event_id"
    )
    with one_connection_pool(topology.dsns.runtime_sync) as engine:
        raw = engine.raw_connection()
        conn = raw.driver_connection
        assert isinstance(conn, psycopg.Connection)
        raw.close()
        with syncs_sent(conn) as sent:
            rows = statement_sync(carried, {**ctx.as_params(), "t": ctx.tenant_id, "e": event}, engine)
        assert conn.autocommit is False
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    assert sent == [1]
    assert [row.external_event_id for row in rows] == [event]
    with tenant_transaction_sync(ctx, runtime_engine) as check:
        assert check.execute(COUNT_EVENT, {"e": event}).scalar_one() == 1
