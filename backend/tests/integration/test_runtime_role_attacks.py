"""An attacker holding a SQL session as app_user (a SQL injection, a compromised api or worker) or as
ops_reader tries PostgreSQL's PUBLIC defaults: large objects (storage outside row-level security, a
write path for the read-only role) and the cluster's other databases. Each attempt must be refused;
each has a control that widens the one grant it relies on and shows the attempt would then succeed,
so a refusal for some other reason cannot pass for the property.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url

from scripts.harness import sync_dsn
from scripts.topology import Topology

ATTACKERS = ("runtime_sync", "ops")  # Dsns attributes: app_user and ops_reader


def attacker_dsn(topology: Topology, attacker: str, database: str | None = None) -> str:
    assert topology.dsns is not None
    url = make_url(sync_dsn(getattr(topology.dsns, attacker)))
    if database:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


@contextmanager
def widened(topology: Topology, grant: str, revoke: str, database: str | None = None) -> Iterator[None]:
    """The control: one PUBLIC default given back by the bootstrap superuser for the block."""
    assert topology.admin_url is not None
    url = make_url(topology.admin_url)
    admin = (url.set(database=database or topology.database)).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(grant)
    try:
        yield
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(revoke)


def create_large_object(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT lo_from_bytea(0, 'outside row-level security'::bytea)")
        conn.rollback()


@pytest.mark.parametrize("attacker", ATTACKERS)
def test_no_large_objects(topology: Topology, attacker: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="lo_from_bytea"):
        create_large_object(attacker_dsn(topology, attacker))


def test_control_large_objects_open_when_public_may_call_them(topology: Topology) -> None:
    grant = "GRANT EXECUTE ON FUNCTION lo_from_bytea(oid, bytea) TO PUBLIC"
    with widened(topology, grant, grant.replace("GRANT", "REVOKE").replace(" TO ", " FROM ")):
        create_large_object(attacker_dsn(topology, "ops"))  # rolled back: nothing stays


@pytest.mark.parametrize("attacker", ATTACKERS)
@pytest.mark.parametrize("database", ["postgres", "template1"])
def test_no_other_database(topology: Topology, attacker: str, database: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(attacker_dsn(topology, attacker, database), connect_timeout=10).close()


def test_control_another_database_opens_when_public_may_connect(topology: Topology) -> None:
    grant = "GRANT CONNECT ON DATABASE postgres TO PUBLIC"
    revoke = grant.replace("GRANT", "REVOKE").replace(" TO ", " FROM ")
    with (
        widened(topology, grant, revoke, "postgres"),
        psycopg.connect(attacker_dsn(topology, "runtime_sync", "postgres"), connect_timeout=10) as conn,
    ):
        assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)
