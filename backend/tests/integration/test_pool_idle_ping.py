"""The worker's pool pings a connection on checkout only after it sat idle, and replaces a dead one."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from app.core.db import ping_when_idle
from scripts.topology import Topology

from ..conftest import one_connection_pool

pytestmark = pytest.mark.integration

BACKEND_PID = text("SELECT pg_backend_pid()")


def kill_pooled_backend(engine: Engine) -> int:
    """Terminate the pooled connection's server process, as a PostgreSQL restart would; returns its pid."""
    with engine.connect() as conn:
        pid = int(conn.execute(BACKEND_PID).scalar_one())
    killer = create_engine(engine.url)
    with killer.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    killer.dispose()
    time.sleep(0.3)  # let the server finish the termination
    return pid


def test_an_idle_dead_connection_is_replaced_on_checkout(topology: Topology) -> None:
    assert topology.dsns is not None
    with one_connection_pool(topology.dsns.runtime_sync) as engine:
        ping_when_idle(engine, idle_s=0.1)
        dead = kill_pooled_backend(engine)
        with engine.connect() as conn:
            assert conn.execute(BACKEND_PID).scalar_one() != dead


def test_without_the_idle_ping_the_dead_connection_fails_its_first_use(topology: Topology) -> None:
    """Negative control: the same dead connection, checked out before the idle threshold."""
    assert topology.dsns is not None
    with one_connection_pool(topology.dsns.runtime_sync) as engine:
        ping_when_idle(engine, idle_s=600)
        kill_pooled_backend(engine)
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(BACKEND_PID)
