"""An attacker holding a SQL session as app_user (a SQL injection, a leaked runtime DSN) or as
ops_reader tries: PostgreSQL's PUBLIC defaults (large objects, the cluster's other databases), session
settings that once opened other tenants' rows, a forged, expired or swapped tenant context, the keys
that sign it, other roles, and search-path shadowing. Each attempt
must be refused; each kind has a control that widens the one grant or policy it relies on and shows
the attempt would then succeed, so a refusal for some other reason cannot pass for the property.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, ProgrammingError

from app.core.db import tenant_transaction_sync
from app.core.tenancy import (
    CONTEXT_GUC,
    CONTEXT_KEYS_TABLE,
    LEGACY_TENANT_GUC,
    LEGACY_USER_GUC,
    SET_CONTEXT_SQL,
    SET_LEGACY_CONTEXT_SQL,
    context_keys,
    legacy_params,
    sign_with,
)
from app.tenants.service import create_tenant
from scripts.harness import sync_dsn
from scripts.topology import Topology

from ..conftest import TwoTenants
from .conftest import superuser_dsn

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
    admin = superuser_dsn(topology, database)
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


# -- scope by session setting -------------------------------------------------------------------

SCOPE_GAMES = [
    pytest.param("SELECT set_config('app.system_scope', 'metrics', true)", id="metrics-local"),
    pytest.param("SELECT set_config('app.system_scope', 'outbox_relay', true)", id="relay-local"),
    pytest.param("SELECT set_config('app.system_scope', 'outbox_relay', false)", id="relay-session"),
    pytest.param("SET LOCAL app.system_scope = 'metrics'", id="set-local"),
    pytest.param("SELECT set_config('app.system_scope', '', true)", id="empty"),
    pytest.param("SELECT set_config('app.system_scope', 'outbox_relay''; --', true)", id="malformed"),
]


@contextmanager
def as_tenant_rolled_back(engine: Engine, tenants: TwoTenants) -> Iterator[Connection]:
    """Tenant A's unit of work, always rolled back: whatever the attack changed (settings included) goes."""
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            conn.execute(SET_CONTEXT_SQL, tenants.a.context.as_params())
            yield conn
        finally:
            transaction.rollback()


def rows_of_b_seen_by_a(conn: Connection, two_tenants: TwoTenants) -> dict[str, int]:
    """As tenant A, after the game: B's rows in the tables a setting once opened, and B's job rows
    an UPDATE reaches."""
    b = {"b": two_tenants.b.tenant_id}
    seen = {
        table: conn.execute(text(f"SELECT count(*) FROM {table} WHERE tenant_id = :b"), b).scalar_one()
        for table in ("attribution_events", "outbox", "attribution_jobs", "dead_letter_events", "llm_api_calls")
    }
    seen["jobs_updated"] = conn.execute(
        text("UPDATE attribution_jobs SET error = 'attacker' WHERE tenant_id = :b"), b
    ).rowcount
    return seen


@pytest.fixture(scope="module")
def work_of_b(runtime_engine: Engine, two_tenants: TwoTenants) -> None:
    """Tenant B has an attribution job (finished, so the relay leaves it alone) and an outbox row."""
    with tenant_transaction_sync(two_tenants.b.context, runtime_engine) as conn:
        conn.execute(
            text("INSERT INTO attribution_jobs (tenant_id, model, status) VALUES (:b, 'last_touch', 'succeeded')"),
            {"b": two_tenants.b.tenant_id},
        )
        conn.execute(
            text(
                "INSERT INTO outbox (tenant_id, kind, dispatched_at, completed_at) "
                "VALUES (:b, 'attribution_recompute', now(), now())"
            ),
            {"b": two_tenants.b.tenant_id},
        )


@pytest.mark.parametrize("game", SCOPE_GAMES)
@pytest.mark.usefixtures("work_of_b")
def test_no_setting_widens_what_app_user_sees(runtime_engine: Engine, two_tenants: TwoTenants, game: str) -> None:
    with as_tenant_rolled_back(runtime_engine, two_tenants) as conn:
        conn.execute(text(game))
        seen = rows_of_b_seen_by_a(conn, two_tenants)
    assert seen == dict.fromkeys(seen, 0)


@pytest.mark.usefixtures("work_of_b")
def test_control_a_policy_keyed_on_a_setting_would_be_caught(
    runtime_engine: Engine, owner_engine: Engine, two_tenants: TwoTenants
) -> None:
    """The policies 0003 and 0007 had, put back for the test: the same game then reads tenant B's
    events and reaches (and could rewrite) B's job."""
    keyed = "USING (current_setting('app.system_scope', true) = 'outbox_relay')"
    with owner_engine.begin() as conn:
        conn.execute(text(f"CREATE POLICY attack_control ON attribution_events FOR SELECT {keyed}"))
        conn.execute(text(f"CREATE POLICY attack_control ON attribution_jobs {keyed}"))
    try:
        with as_tenant_rolled_back(runtime_engine, two_tenants) as conn:
            conn.execute(text("SELECT set_config('app.system_scope', 'outbox_relay', true)"))
            seen = rows_of_b_seen_by_a(conn, two_tenants)
        assert seen["attribution_events"] == 1 and seen["attribution_jobs"] >= 1 and seen["jobs_updated"] >= 1
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text("DROP POLICY attack_control ON attribution_events"))
            conn.execute(text("DROP POLICY attack_control ON attribution_jobs"))


def test_cross_tenant_reads_are_aggregates_only(runtime_engine: Engine, two_tenants: TwoTenants) -> None:
    """What the runtime may know across tenants: counts through app_system's functions, never rows."""
    with runtime_engine.begin() as conn:
        events = dict(conn.execute(text("SELECT platform, n FROM metrics_events()")).all())
        assert events.get("stripe", 0) >= 2  # both tenants' events, counted
        assert conn.execute(text("SELECT count(*) FROM attribution_events")).scalar_one() == 0  # rows: none


@pytest.mark.parametrize(
    "statement",
    ["SET ROLE app_system", "SET SESSION AUTHORIZATION app_system", "SET ROLE app_owner", "SET ROLE ops_reader"],
)
def test_app_user_cannot_become_another_role(runtime_engine: Engine, statement: str) -> None:
    with runtime_engine.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
        conn.execute(text(statement))


def test_search_path_shadowing_does_not_reach_the_definer_functions(runtime_engine: Engine) -> None:
    """A definer function resolves names in its pinned search_path, so an attacker's temp table named
    like a real one cannot feed it; and app_user may not create one anyway."""
    with runtime_engine.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
        conn.execute(text("CREATE TEMP TABLE outbox (id bigint)"))


# -- limits and switches ------------------------------------------------------------------------

LIMIT_ATTACKS = [
    pytest.param("UPDATE llm_budget_periods SET limit_cents = 1e9", id="raise-limit"),
    pytest.param("DELETE FROM llm_budget_periods", id="delete-period"),
    pytest.param("DELETE FROM llm_hourly_shutoff", id="delete-shutoff"),
    pytest.param("UPDATE llm_hourly_shutoff SET shut_off = false", id="lift-shutoff"),
    pytest.param("UPDATE llm_hourly_shutoff SET spent_cents = 0", id="forget-spend"),
    pytest.param("UPDATE llm_budget_periods SET spent_cents = 0", id="forget-monthly-spend"),
    pytest.param("UPDATE llm_kill_switch SET enabled = false", id="clear-kill-switch"),
    pytest.param("UPDATE llm_limits SET monthly_budget_cents = 1e9", id="raise-default"),
    pytest.param("UPDATE llm_hourly_shutoff SET hour_start = hour_start - interval '100 years'", id="move-the-hour"),
    pytest.param(
        "INSERT INTO llm_hourly_shutoff (tenant_id, user_id, hour_start, spent_cents) "
        "SELECT tenant_id, user_id, hour_start + interval '1 hour', -1e9 FROM llm_hourly_shutoff",
        id="negative-spend-ahead",
    ),
    pytest.param("UPDATE llm_budget_reservations SET amount_cents = 0", id="shrink-a-reservation"),
    pytest.param("DELETE FROM llm_budget_reservations", id="drop-reservations"),
    # The breaker every tenant shares (migration 0029).
    pytest.param("UPDATE llm_breaker_state SET state = 'open', opened_at = now()", id="open-the-shared-breaker"),
    pytest.param("UPDATE llm_breaker_state SET state = 'closed', consecutive_failures = 0", id="close-the-breaker"),
    pytest.param(
        "INSERT INTO llm_breaker_state (provider, model, state, opened_at) VALUES ('mock', 'planted', 'open', now())",
        id="plant-an-open-breaker",
    ),
]
# What shows each refusal is the runtime's and not broken SQL: the statement as the operator (or the
# schema owner, for tables no operator writes), or for a constraint, the same write within it.
CONTROLS = {
    "negative-spend-ahead": (
        "runtime",
        str(next(p.values[0] for p in LIMIT_ATTACKS if p.id == "negative-spend-ahead")).replace("-1e9", "0"),
    ),
    "shrink-a-reservation": ("owner", None),
    "drop-reservations": ("owner", None),
    "open-the-shared-breaker": ("owner", None),
    "close-the-breaker": ("owner", None),
    "plant-an-open-breaker": ("owner", None),
}


@pytest.fixture
def spent_tenant(runtime_engine: Engine, two_tenants: TwoTenants) -> TwoTenants:
    """A tenant of its own (the shared A may have made LLM calls in another test this hour) that has
    spent this month and is shut off this hour, as the boundary itself records it; B as shared."""
    with runtime_engine.begin() as conn:
        spender = create_tenant(conn, f"spent-{uuid.uuid4().hex[:6]}")
    a = {"t": spender.tenant_id, "u": spender.user_id}
    with tenant_transaction_sync(spender.context, runtime_engine) as conn:
        conn.execute(
            text(
                "INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents) "
                "VALUES (:t, :u, date_trunc('month', now())::date, 0) ON CONFLICT DO NOTHING"
            ),
            a,
        )
        conn.execute(text("UPDATE llm_budget_periods SET spent_cents = spent_cents + 10 WHERE user_id = :u"), a)
        conn.execute(
            text(
                "INSERT INTO llm_hourly_shutoff (tenant_id, user_id, hour_start, spent_cents) "
                "VALUES (:t, :u, date_trunc('hour', now()), 600) ON CONFLICT DO NOTHING"
            ),
            a,
        )
    return TwoTenants(spender, two_tenants.b)


@pytest.mark.parametrize("attack", LIMIT_ATTACKS)
def test_the_runtime_cannot_widen_its_limits(runtime_engine: Engine, spent_tenant: TwoTenants, attack: str) -> None:
    with (
        as_tenant_rolled_back(runtime_engine, spent_tenant) as conn,
        pytest.raises((ProgrammingError, IntegrityError)) as refused,
    ):
        conn.execute(text(attack))
    reasons = ("permission denied", "only move toward the limit", "never taken back", "llm_hourly_shutoff_spend_check")
    assert any(reason in str(refused.value) for reason in reasons), refused.value


@pytest.mark.parametrize("attack", LIMIT_ATTACKS)
def test_control_the_statement_itself_works(
    request: pytest.FixtureRequest, spent_tenant: TwoTenants, attack: str
) -> None:
    """The same statement goes through for the operator (see CONTROLS for the exceptions)."""
    case = request.node.callspec.id
    role, statement = CONTROLS.get(case, ("admin", None))
    engine: Engine = request.getfixturevalue(f"{role}_engine")
    if role == "runtime":
        with as_tenant_rolled_back(engine, spent_tenant) as conn:
            conn.execute(text(statement or attack))
        return
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            conn.execute(text(statement or attack))
        finally:
            transaction.rollback()


def test_a_period_the_runtime_creates_gets_the_operators_limit(
    runtime_engine: Engine, admin_engine: Engine, two_tenants: TwoTenants
) -> None:
    """Next month's period inserted with a huge limit (which llm_route_admit would then keep) and a
    negative reservation: it gets the operators' limit and starts empty."""
    with as_tenant_rolled_back(runtime_engine, two_tenants) as conn:
        row = conn.execute(
            text(
                "INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents, spent_cents) "
                "VALUES (:t, :u, (date_trunc('month', now()) + interval '1 month')::date, 1e9, 0) "
                "RETURNING limit_cents, spent_cents, reserved_cents"
            ),
            {"t": two_tenants.a.tenant_id, "u": two_tenants.a.user_id},
        ).one()
        default = conn.execute(text("SELECT monthly_budget_cents FROM llm_limits")).scalar_one()
    assert (row.limit_cents, row.spent_cents, row.reserved_cents) == (default, 0, 0)


def test_a_caller_passing_a_huge_hourly_limit_is_still_shut_off(
    runtime_engine: Engine, spent_tenant: TwoTenants
) -> None:
    """The hour's shutoff follows the operators' hourly limit, not the limit the caller passes."""
    with as_tenant_rolled_back(runtime_engine, spent_tenant) as conn:
        shut = conn.execute(
            text("SELECT shut_off FROM llm_hourly_shutoff WHERE user_id = :u"), {"u": spent_tenant.a.user_id}
        )
        assert shut.scalar_one() is True  # 600 >= the operators' 500, though the insert did not say so
        verdict = conn.execute(
            text(
                "SELECT verdict, blocked_reason FROM llm_admit('attack-hourly', 'route', 1, 'cheap', 'mock', "
                "'mock-small', 'sha', 'base', 1, 1e9, false, 30)"
            )
        ).one()
    assert tuple(verdict) == ("blocked", "hourly_shutoff")


# -- forging the tenant context -----------------------------------------------------------------


def _forged_key(tenants: TwoTenants) -> str:
    """B's context signed with a key the database does not know, under the current key id."""
    kid, _ = context_keys()
    return sign_with(secrets.token_bytes(32), kid, tenants.b.context, expires=int(time.time()) + 300)


def _expired(tenants: TwoTenants) -> str:
    kid, keys = context_keys()
    return sign_with(keys[kid], kid, tenants.b.context, expires=int(time.time()) - 1)


def _unknown_key_id(tenants: TwoTenants) -> str:
    kid, keys = context_keys()
    return sign_with(keys[kid], "not-a-known-key", tenants.b.context, expires=int(time.time()) + 300)


def _tenant_swapped(tenants: TwoTenants) -> str:
    """A's valid token (its MAC included) with B's id put in place of A's."""
    return tenants.a.context.token().replace(str(tenants.a.tenant_id), str(tenants.b.tenant_id))


def _raw_tenant_id(tenants: TwoTenants) -> str:
    return str(tenants.b.tenant_id)


FORGERIES: dict[str, Callable[[TwoTenants], str]] = {
    "wrong-mac": _forged_key,
    "expired": _expired,
    "unknown-key-id": _unknown_key_id,
    "tenant-swapped": _tenant_swapped,
    "raw-tenant-id": _raw_tenant_id,
}
SET_TOKEN = f"SELECT set_config('{CONTEXT_GUC}', :token, :local)"


@pytest.mark.parametrize("local", [True, False], ids=["local", "session"])
@pytest.mark.parametrize("forgery", list(FORGERIES))
@pytest.mark.usefixtures("work_of_b")
def test_a_forged_context_sees_and_writes_nothing(
    runtime_engine: Engine, two_tenants: TwoTenants, forgery: str, local: bool
) -> None:
    """Inside A's unit of work, the attacker replaces the context with one claiming B: it verifies as
    no context at all (not even A's), so it reads none of B's rows and may not write one."""
    token = FORGERIES[forgery](two_tenants)
    with as_tenant_rolled_back(runtime_engine, two_tenants) as conn:
        conn.execute(text(SET_TOKEN), {"token": token, "local": local})
        verified = conn.execute(text("SELECT app_current_tenant(), app_current_user(), app_current_context()"))
        assert tuple(verified.one()) == (None, None, (None, None))
        seen = rows_of_b_seen_by_a(conn, two_tenants)
        with pytest.raises(ProgrammingError, match="row-level security"), conn.begin_nested():
            conn.execute(INSERT_EVENT_OF_B, {"b": two_tenants.b.tenant_id})
    assert seen == dict.fromkeys(seen, 0)


SET_LEGACY_SESSION = text(
    f"SELECT set_config('{LEGACY_TENANT_GUC}', :tenant_id, false), set_config('{LEGACY_USER_GUC}', :user_id, false)"
)


@pytest.mark.parametrize("local", [True, False], ids=["local", "session"])
@pytest.mark.usefixtures("work_of_b")
def test_the_old_settings_name_no_tenant(runtime_engine: Engine, two_tenants: TwoTenants, local: bool) -> None:
    """``app.current_tenant_id`` / ``app.current_user_id`` (what the context was before 0024) set to B."""
    with runtime_engine.connect() as conn:
        transaction = conn.begin()
        try:
            conn.execute(SET_LEGACY_CONTEXT_SQL if local else SET_LEGACY_SESSION, legacy_params(two_tenants.b.context))
            assert conn.execute(text("SELECT app_current_tenant()")).scalar_one() is None
            seen = rows_of_b_seen_by_a(conn, two_tenants)
        finally:
            transaction.rollback()
    assert seen == dict.fromkeys(seen, 0)


@pytest.mark.usefixtures("work_of_b")
def test_control_a_correctly_signed_context_for_b_shows_b(runtime_engine: Engine, two_tenants: TwoTenants) -> None:
    """The verification is not one that always fails: B's own signed token reads and reaches B's rows."""
    with as_tenant_rolled_back(runtime_engine, two_tenants) as conn:
        conn.execute(text(SET_TOKEN), {"token": two_tenants.b.context.token(), "local": True})
        seen = rows_of_b_seen_by_a(conn, two_tenants)
        conn.execute(INSERT_EVENT_OF_B, {"b": two_tenants.b.tenant_id})
    assert seen["attribution_events"] == 1 and seen["attribution_jobs"] >= 1 and seen["jobs_updated"] >= 1


@pytest.mark.usefixtures("work_of_b")
def test_control_the_old_scheme_was_open(runtime_engine: Engine, owner_engine: Engine, two_tenants: TwoTenants) -> None:
    """A policy keyed on the raw setting, as every policy was before 0024: the same game then reads B's event."""
    raw = f"USING (tenant_id = nullif(current_setting('{LEGACY_TENANT_GUC}', true), '')::uuid)"
    with owner_engine.begin() as conn:
        conn.execute(text(f"CREATE POLICY attack_control ON attribution_events FOR SELECT {raw}"))
    try:
        with runtime_engine.connect() as conn:
            transaction = conn.begin()
            try:
                conn.execute(SET_LEGACY_CONTEXT_SQL, legacy_params(two_tenants.b.context))
                seen = rows_of_b_seen_by_a(conn, two_tenants)
            finally:
                transaction.rollback()
        assert seen["attribution_events"] == 1
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text("DROP POLICY attack_control ON attribution_events"))


INSERT_EVENT_OF_B = text(
    "INSERT INTO attribution_events (tenant_id, platform, external_event_id, event_type, occurred_at) "
    "VALUES (:b, 'stripe', 'forged-' || gen_random_uuid(), 'conversion', now())"
)
KEY_READERS = ("runtime_sync", "ops", "ops_admin")  # Dsns attributes: app_user, ops_reader, ops_admin


@pytest.mark.parametrize("reader", KEY_READERS)
def test_no_login_role_reads_the_context_keys(topology: Topology, reader: str) -> None:
    with (
        psycopg.connect(attacker_dsn(topology, reader)) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match=CONTEXT_KEYS_TABLE),
    ):
        conn.execute(f"SELECT k_ipad, k_opad FROM {CONTEXT_KEYS_TABLE}")


def test_control_the_keys_read_once_granted(topology: Topology, owner_engine: Engine) -> None:
    with owner_engine.begin() as conn:
        conn.execute(text(f"GRANT SELECT ON {CONTEXT_KEYS_TABLE} TO ops_reader"))
    try:
        with psycopg.connect(attacker_dsn(topology, "ops")) as conn:
            assert conn.execute(f"SELECT count(*) FROM {CONTEXT_KEYS_TABLE}").fetchone() == (1,)
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text(f"REVOKE SELECT ON {CONTEXT_KEYS_TABLE} FROM ops_reader"))


INTAKE_EVENT = text(
    "SELECT * FROM webhook_intake_event(:token, 'stripe', :event, :event, 'conversion', 'cust-1', NULL, now(), "
    "100, 'usd', '{}', NULL)"
)
INTAKE_DEAD_LETTER = text(
    "SELECT webhook_intake_dead_letter(:token, 'stripe', :event, 'invalid_json', '{}', 'sha', 1, NULL)"
)
INTAKE_SECRETS = text("SELECT webhook_intake_secrets(:token)")
INTAKE_TIMED_SECRETS = text("SELECT * FROM webhook_intake_timed_secrets(:token)")  # the cache's (0031)
STORED_BY_INTAKE = text(
    "SELECT (SELECT count(*) FROM attribution_events WHERE external_event_id = :event)"
    " + (SELECT count(*) FROM dead_letter_events WHERE webhook_id = :event)"
)


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_the_intake_functions_refuse_a_forged_context(
    runtime_engine: Engine, two_tenants: TwoTenants, forgery: str
) -> None:
    """Called directly with a context claiming B: no secret of B's comes back, and nothing is stored."""
    token, event = FORGERIES[forgery](two_tenants), f"forged-{uuid.uuid4().hex}"
    with runtime_engine.connect() as conn:
        for secrets in (INTAKE_SECRETS, INTAKE_TIMED_SECRETS):
            assert conn.execute(secrets, {"token": token}).all() == []
            conn.rollback()
        for call in (INTAKE_EVENT, INTAKE_DEAD_LETTER):
            with pytest.raises(ProgrammingError, match="no valid tenant context"):
                conn.execute(call, {"token": token, "event": event})
            conn.rollback()
    with tenant_transaction_sync(two_tenants.b.context, runtime_engine) as conn:
        assert conn.execute(STORED_BY_INTAKE, {"event": event}).scalar_one() == 0


def test_control_the_intake_functions_take_a_signed_context(runtime_engine: Engine, two_tenants: TwoTenants) -> None:
    token, event = two_tenants.b.context.token(), f"signed-{uuid.uuid4().hex}"
    with runtime_engine.connect() as conn:
        transaction = conn.begin()
        try:
            assert len(conn.execute(INTAKE_SECRETS, {"token": token}).all()) >= 1
            assert len(conn.execute(INTAKE_TIMED_SECRETS, {"token": token}).all()) >= 1
            for call in (INTAKE_EVENT, INTAKE_DEAD_LETTER):
                conn.execute(call, {"token": token, "event": event})
            assert conn.execute(STORED_BY_INTAKE, {"event": event}).scalar_one() == 2
        finally:
            transaction.rollback()
