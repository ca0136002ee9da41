"""The LLM boundary's functions run as app_system (SECURITY DEFINER, migration 0026), past row-level
security, so each must refuse a caller without a valid context and keep to the tenant and user its
context names. Tried as app_user: every forged context; another tenant's or another user's call id
handed to the functions that settle and fail a call; the steps inside them (release, finish) called
directly; another user's request id; a session TimeZone that would key a fresh hour. Controls: the
same calls as the call's own user do change it, and a copy of each function without the filter or
setting in question is caught. A period and an hour the boundary writes still follow the operators'
limits (the guards count app_system as the runtime); their controls put back the guards that counted
app_rw members only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from app.core.db import tenant_transaction_sync
from app.core.tenancy import CONTEXT_GUC, TenantContext
from app.tenants.service import create_tenant
from scripts.harness import REPO_ROOT
from scripts.topology import Topology

from ..conftest import TwoTenants
from .conftest import superuser_dsn
from .test_runtime_role_attacks import FORGERIES

FUNCTIONS = REPO_ROOT / "backend" / "sql" / "functions"
MONTH_PERIOD = text(
    "INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents) "
    "VALUES (:t, :u, date_trunc('month', now())::date, 0) ON CONFLICT DO NOTHING"
)
MODEL = "mock-definer"
ADMIT = text(
    "SELECT call_id, verdict FROM llm_admit(:request, 'route', 1, 'cheap', 'mock', :model, 'sha', "
    "'base', 2, 1e9, false, 30)"
)
ROUTE_ADMIT = text(
    "SELECT verdict FROM llm_route_admit(:request, 'route', 1, :monthly_limit, '{0.5,0.8}', "
    "'{standard,standard,economy}', '{mock-definer,mock-definer,mock-definer}', '{kb,kb,kb}', '{1,1,1}', 'mock', "
    "'sha', 1e9, false, 30)"
)
SETTLE = "SELECT llm_settle(:call, :cost, 1e9, false, '{}', '{}', :key, '{\"text\": \"x\"}', 1, 1, 1)"
# What another tenant's or user's session tries on a call that is not its own.
REACHES = {"settle": SETTLE, "fail": "SELECT llm_fail(:call, 'error', 1000)"}
STEPS = {  # told a tenant and user: app_system's LLM functions verified them, the runtime may not call these
    "finish": "SELECT llm_finish(:tenant, :user, :call, 'blocked', 'attack', NULL, false, false, NULL)",
    "release": "SELECT llm_release(:tenant, :user, :call, 2)",
    "admit_for": "SELECT * FROM llm_admit_for(:tenant, :user, 'attack', 'route', 1, 'cheap', 'mock', 'mock-definer', "
    "'sha', 'base', 2, 1e9, false, 30)",
}
CALL_STATE = (
    "SELECT c.status, r.status AS reservation, b.reserved_cents, b.spent_cents, "
    "(SELECT count(*) FROM llm_distillation_records d WHERE d.call_id = c.id) AS distilled "
    "FROM llm_api_calls c JOIN llm_budget_reservations r ON r.call_id = c.id "
    "JOIN llm_budget_periods b ON (b.tenant_id, b.user_id, b.period_start) = (r.tenant_id, r.user_id, r.period_start) "
    "WHERE c.id = %(call)s"
)
UNTOUCHED = ("pending", "held", 2, 0, 0)


@dataclass(frozen=True)
class PendingCall:
    owner: TenantContext
    call_id: uuid.UUID
    request_id: str


@pytest.fixture
def pending_call(runtime_engine: Engine, admin_engine: Engine) -> PendingCall:
    return admitted_call(runtime_engine, admin_engine, MODEL)


def admitted_call(runtime_engine: Engine, admin_engine: Engine, model: str) -> PendingCall:
    """A fresh tenant's admitted call to ``model``: pending, its estimate of 2 held against the month's
    period. A new period gets the operators' limit, which may be anything, so the operator gives this one room."""
    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, f"definer-{uuid.uuid4().hex[:6]}")
    params = {"t": tenant.tenant_id, "u": tenant.user_id}
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        conn.execute(MONTH_PERIOD, params)
    with admin_engine.begin() as conn:
        conn.execute(text("UPDATE llm_budget_periods SET limit_cents = 1000 WHERE tenant_id = :t"), params)
    request = f"definer-{uuid.uuid4().hex}"
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        admitted = conn.execute(ADMIT, {"request": request, "model": model}).one()
    assert admitted.verdict == "admitted"
    return PendingCall(tenant.context, admitted.call_id, request)


def state(topology: Topology, call: PendingCall) -> tuple[Any, ...]:
    """The call as it is, read by the bootstrap superuser (past row-level security)."""
    with psycopg.connect(superuser_dsn(topology)) as conn:
        row = conn.execute(CALL_STATE, {"call": call.call_id}).fetchone()
    assert row is not None
    return tuple(row)


def attackers(call: PendingCall, two_tenants: TwoTenants) -> dict[str, TenantContext]:
    return {
        "another-tenant": two_tenants.b.context,
        "same-tenant-another-user": TenantContext(call.owner.tenant_id, "someone-else"),
    }


@pytest.mark.parametrize("attacker", ["another-tenant", "same-tenant-another-user"])
@pytest.mark.parametrize("reach", list(REACHES))
def test_a_call_of_another_tenant_or_user_is_out_of_reach(
    runtime_engine: Engine,
    topology: Topology,
    two_tenants: TwoTenants,
    pending_call: PendingCall,
    attacker: str,
    reach: str,
) -> None:
    with tenant_transaction_sync(attackers(pending_call, two_tenants)[attacker], runtime_engine) as conn:
        conn.execute(text(REACHES[reach]), {"call": pending_call.call_id, "key": f"k-{uuid.uuid4().hex}", "cost": 5})
    assert state(topology, pending_call) == UNTOUCHED


@pytest.mark.parametrize("step", list(STEPS))
def test_the_steps_inside_the_boundary_functions_are_not_the_runtimes_to_call(
    runtime_engine: Engine, pending_call: PendingCall, step: str
) -> None:
    with (
        pytest.raises(ProgrammingError, match=f"permission denied for function llm_{step}"),
        tenant_transaction_sync(pending_call.owner, runtime_engine) as conn,
    ):
        owner = pending_call.owner
        conn.execute(
            text(STEPS[step]), {"tenant": owner.tenant_id, "user": owner.user_id, "call": pending_call.call_id}
        )


@pytest.mark.parametrize("reach", list(REACHES))
def test_control_the_calls_own_user_reaches_it(
    runtime_engine: Engine, topology: Topology, pending_call: PendingCall, reach: str
) -> None:
    """The same statement from the call's own context does change it: the refusal above is the scope."""
    with tenant_transaction_sync(pending_call.owner, runtime_engine) as conn:
        conn.execute(text(REACHES[reach]), {"call": pending_call.call_id, "key": f"k-{uuid.uuid4().hex}", "cost": 5})
    assert state(topology, pending_call) != UNTOUCHED


@contextmanager
def replaced(owner_engine: Engine, function: str, old: str, new: str) -> Iterator[None]:
    """``function`` installed with ``old`` replaced by ``new`` for the block, then its file's text again."""
    current = (FUNCTIONS / f"{function}.sql").read_text(encoding="utf-8")
    assert old in current, f"{function}.sql no longer holds {old!r}"
    with owner_engine.begin() as conn:
        conn.execute(text(current.replace(old, new)))
    try:
        yield
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text(current))


def test_control_a_finish_without_its_tenant_filter_is_caught(
    runtime_engine: Engine,
    owner_engine: Engine,
    topology: Topology,
    two_tenants: TwoTenants,
    pending_call: PendingCall,
) -> None:
    """llm_fail looks the call up under the verified tenant and user, and llm_finish filters on them
    again: with neither filter, another tenant's session fails the call. llm_finish's filter alone is
    defence in depth: since 0029 no function hands it a call id it has not found as the caller's."""
    unfiltered = replaced(
        owner_engine, "llm_finish", " AND (tenant_id, user_id) IS NOT DISTINCT FROM (p_tenant, p_user)", ""
    )
    looked_up_by_id = replaced(
        owner_engine,
        "llm_fail",
        " AND c.status = 'pending' AND (c.tenant_id, c.user_id) IS NOT DISTINCT FROM (v_tenant, v_user)",
        "",
    )
    with unfiltered, looked_up_by_id, tenant_transaction_sync(two_tenants.b.context, runtime_engine) as conn:
        conn.execute(text(REACHES["fail"]), {"call": pending_call.call_id})
    assert state(topology, pending_call)[0] == "failed"  # the check above would have failed


def test_control_a_settle_without_its_tenant_filter_is_caught(
    runtime_engine: Engine,
    owner_engine: Engine,
    topology: Topology,
    two_tenants: TwoTenants,
    pending_call: PendingCall,
) -> None:
    """settle finishes the row first and writes the rest only when that update found the caller's call."""
    unfiltered = replaced(
        owner_engine,
        "llm_settle",
        " AND (tenant_id, user_id) IS NOT DISTINCT FROM (v_tenant, v_user)",
        "",
    )
    with unfiltered, tenant_transaction_sync(two_tenants.b.context, runtime_engine) as conn:
        conn.execute(text(REACHES["settle"]), {"call": pending_call.call_id, "key": f"k-{uuid.uuid4().hex}", "cost": 5})
    called = state(topology, pending_call)
    assert (called[0], called[-1]) == ("succeeded", 2)  # the check above would have failed


@pytest.mark.parametrize("forgery", [*FORGERIES, "none"])
@pytest.mark.parametrize("reach", ["route_admit", "admit", *REACHES])
def test_no_valid_context_no_boundary_call(
    runtime_engine: Engine, two_tenants: TwoTenants, forgery: str, reach: str
) -> None:
    token = "" if forgery == "none" else FORGERIES[forgery](two_tenants)
    statement = {"route_admit": ROUTE_ADMIT, "admit": ADMIT}.get(reach, text(REACHES.get(reach, "")))
    params = {
        "request": f"forged-{uuid.uuid4().hex}",
        "model": MODEL,
        "monthly_limit": 1,
        "call": uuid.uuid4(),
        "key": "k",
        "cost": 1,
    }
    with runtime_engine.connect() as conn, pytest.raises(ProgrammingError, match="no valid tenant context"):
        conn.execute(text(f"SELECT set_config('{CONTEXT_GUC}', :token, true)"), {"token": token})
        conn.execute(statement, params)


def test_a_period_the_boundary_creates_gets_the_operators_limit(runtime_engine: Engine, admin_engine: Engine) -> None:
    assert period_limit_after_route_admit(runtime_engine, admin_engine) == operators_limit(admin_engine)


def test_control_a_guard_blind_to_app_system_would_keep_the_callers_limit(
    runtime_engine: Engine, owner_engine: Engine, admin_engine: Engine
) -> None:
    guard = "current_user = 'app_system' OR "
    with replaced(owner_engine, "llm_budget_period_guard", guard, ""):
        assert period_limit_after_route_admit(runtime_engine, admin_engine) == CALLERS_LIMIT


CALLERS_LIMIT = 987654


def period_limit_after_route_admit(runtime_engine: Engine, admin_engine: Engine) -> Any:
    """A fresh tenant's first call through llm_route_admit, passing a monthly limit of its own."""
    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, f"definer-{uuid.uuid4().hex[:6]}")
    with tenant_transaction_sync(tenant.context, runtime_engine) as conn:
        conn.execute(ROUTE_ADMIT, {"request": f"limit-{uuid.uuid4().hex}", "monthly_limit": CALLERS_LIMIT})
    with admin_engine.connect() as conn:
        return conn.execute(
            text("SELECT limit_cents FROM llm_budget_periods WHERE tenant_id = :t"), {"t": tenant.tenant_id}
        ).scalar_one()


def operators_limit(admin_engine: Engine) -> Any:
    with admin_engine.connect() as conn:
        return conn.execute(text("SELECT monthly_budget_cents FROM llm_limits WHERE id = 1")).scalar_one()


def another_users_admission(runtime_engine: Engine, call: PendingCall) -> Any:
    """The same tenant's other user sends the request id the call's user already used."""
    other = TenantContext(call.owner.tenant_id, "someone-else")
    with tenant_transaction_sync(other, runtime_engine) as conn:
        return conn.execute(ADMIT, {"request": call.request_id, "model": MODEL}).one()


def test_another_users_request_id_reveals_no_call(runtime_engine: Engine, pending_call: PendingCall) -> None:
    admitted = another_users_admission(runtime_engine, pending_call)
    assert (admitted.verdict, admitted.call_id) == ("duplicate", None)


def test_control_a_duplicate_lookup_without_the_user_would_reveal_it(
    runtime_engine: Engine, owner_engine: Engine, pending_call: PendingCall
) -> None:
    with replaced(owner_engine, "llm_admit_for", "c.user_id = p_user AND ", ""):
        admitted = another_users_admission(runtime_engine, pending_call)
    assert admitted.call_id == pending_call.call_id


HOUR_OF = (
    "SELECT h.shut_off, h.hour_start = date_trunc('hour', now(), 'UTC') AS utc_hour FROM llm_hourly_shutoff h "
    "WHERE h.tenant_id = %(t)s AND h.user_id = %(u)s"
)


def settle_own_call(runtime_engine: Engine, topology: Topology, call: PendingCall, cost: Any, zone: str) -> Any:
    """The call's own user settles it from a session in time zone ``zone``; its hour as stored."""
    with tenant_transaction_sync(call.owner, runtime_engine) as conn:
        conn.execute(text(f"SET LOCAL TIME ZONE {zone}"))
        conn.execute(text(SETTLE), {"call": call.call_id, "key": f"k-{uuid.uuid4().hex}", "cost": cost})
    with psycopg.connect(superuser_dsn(topology)) as conn:
        return conn.execute(HOUR_OF, {"t": call.owner.tenant_id, "u": call.owner.user_id}).fetchone()


def hourly_limit(admin_engine: Engine) -> Any:
    with admin_engine.connect() as conn:
        return conn.execute(text("SELECT hourly_limit_cents FROM llm_limits WHERE id = 1")).scalar_one()


def test_an_hour_the_boundary_writes_follows_the_operators_limit_in_utc(
    runtime_engine: Engine, admin_engine: Engine, topology: Topology, pending_call: PendingCall
) -> None:
    """Settled at the operators' hourly limit, with the caller's limit 1e9 and a session 17 minutes off UTC."""
    shut_off, utc_hour = settle_own_call(
        runtime_engine, topology, pending_call, hourly_limit(admin_engine), "INTERVAL '+00:17' HOUR TO MINUTE"
    )
    assert (shut_off, utc_hour) == (True, True)


def test_control_a_guard_blind_to_app_system_would_leave_the_hour_open(
    runtime_engine: Engine, owner_engine: Engine, admin_engine: Engine, topology: Topology, pending_call: PendingCall
) -> None:
    with replaced(owner_engine, "llm_hourly_shutoff_guard", "current_user = 'app_system' OR ", ""):
        shut_off, _ = settle_own_call(runtime_engine, topology, pending_call, hourly_limit(admin_engine), "'UTC'")
    assert shut_off is False


def test_control_a_settle_in_the_sessions_time_zone_would_key_another_hour(
    runtime_engine: Engine, owner_engine: Engine, topology: Topology, pending_call: PendingCall
) -> None:
    with replaced(owner_engine, "llm_settle", "date_trunc('hour', now(), 'UTC')", "date_trunc('hour', now())"):
        _, utc_hour = settle_own_call(runtime_engine, topology, pending_call, 1, "INTERVAL '+00:17' HOUR TO MINUTE")
    assert utc_hour is False


# /metrics reads the hour the boundary writes: UTC's, whatever the session's TimeZone (migration 0028).
SHUT_OFF_NOW = (
    "INSERT INTO llm_hourly_shutoff (tenant_id, user_id, hour_start, spent_cents, shut_off) "
    "VALUES (%(t)s, %(u)s, date_trunc('hour', now(), 'UTC'), 1, true)"
)


def shutoffs_counted_from(runtime_engine: Engine, topology: Topology, zone: str) -> int:
    """How many more users /metrics counts as shut off this hour once a fresh tenant's user is,
    asked from a session in time zone ``zone``."""

    def counted() -> int:
        with runtime_engine.begin() as conn:
            conn.execute(text(f"SET LOCAL TIME ZONE {zone}"))
            return int(conn.execute(text("SELECT metrics_llm_shutoffs()")).scalar_one())

    with runtime_engine.begin() as conn:
        tenant = create_tenant(conn, f"metrics-{uuid.uuid4().hex[:6]}")
    before = counted()
    with psycopg.connect(superuser_dsn(topology)) as conn:
        conn.execute(SHUT_OFF_NOW, {"t": tenant.tenant_id, "u": tenant.user_id})
    return counted() - before


def test_metrics_count_the_utc_hours_shutoffs_from_a_session_off_utc(
    runtime_engine: Engine, topology: Topology
) -> None:
    assert shutoffs_counted_from(runtime_engine, topology, "INTERVAL '+00:17' HOUR TO MINUTE") == 1


def test_control_metrics_in_the_sessions_time_zone_would_miss_it(
    runtime_engine: Engine, owner_engine: Engine, topology: Topology
) -> None:
    with replaced(
        owner_engine, "metrics_llm_shutoffs", "date_trunc('hour', now(), 'UTC')", "date_trunc('hour', now())"
    ):
        assert shutoffs_counted_from(runtime_engine, topology, "INTERVAL '+00:17' HOUR TO MINUTE") == 0


# The breaker is shared by every tenant: only a call of the caller's own moves it, and only the
# breaker of the model that call was admitted for (migration 0029). Each test has a model of its own,
# so a breaker opened here blocks no other test's admissions.
BREAKER = "SELECT state, consecutive_failures FROM llm_breaker_state WHERE provider = 'mock' AND model = %(model)s"
SET_BREAKER = (
    "UPDATE llm_breaker_state SET state = %(state)s, consecutive_failures = %(failures)s, "
    "opened_at = CASE WHEN %(state)s = 'open' THEN now() END WHERE provider = 'mock' AND model = %(model)s"
)
FAIL_AT_ONCE = "SELECT llm_fail(:call, 'error', 1)"  # threshold 1: a counted failure opens the breaker
SETTLE_CLOSING = "SELECT llm_settle(:call, 1, 1e9, true, '{}', '{}', :key, '{\"text\": \"x\"}', 1, 1, 1)"
# What each attempt starts from, and what the call's own user makes of it (the controls).
BREAKER_MOVES = {
    "fail": (FAIL_AT_ONCE, ("closed", 0), ("open", 1)),
    "settle": (SETTLE_CLOSING, ("half_open", 3), ("closed", 0)),  # the half-open trial's success
}


def breaker_after(topology: Topology, runtime_engine: Engine, ctx: TenantContext, call: PendingCall, move: str) -> Any:
    """The breaker of ``call``'s model set to the move's starting state, then ``move`` tried from
    ``ctx`` on ``call``; the breaker as it is afterwards (read by the bootstrap superuser)."""
    statement, start, _ = BREAKER_MOVES[move]
    return breaker_from(topology, runtime_engine, ctx, call, statement, start)


def breaker_from(
    topology: Topology, runtime_engine: Engine, ctx: TenantContext, call: PendingCall, statement: str, start: Any
) -> Any:
    """The breaker of ``call``'s model set to ``start``, then ``statement`` run from ``ctx`` on ``call``."""
    model = {"model": f"mock-breaker-{call.request_id}"}
    with psycopg.connect(superuser_dsn(topology)) as conn:
        conn.execute(SET_BREAKER, {**model, "state": start[0], "failures": start[1]})
    with tenant_transaction_sync(ctx, runtime_engine) as conn:
        conn.execute(text(statement), {"call": call.call_id, "key": f"k-{uuid.uuid4().hex}"})
    with psycopg.connect(superuser_dsn(topology)) as conn:
        row = conn.execute(BREAKER, model).fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture
def breaker_call(runtime_engine: Engine, admin_engine: Engine) -> PendingCall:
    """A pending call to a model of its own; the request id names the model (``breaker_after``)."""
    request_model = f"b-{uuid.uuid4().hex[:12]}"
    call = admitted_call(runtime_engine, admin_engine, f"mock-breaker-{request_model}")
    return PendingCall(call.owner, call.call_id, request_model)


@pytest.mark.parametrize("whose_call", ["the-victims", "none"])
@pytest.mark.parametrize("attacker", ["another-tenant", "same-tenant-another-user"])
@pytest.mark.parametrize("move", list(BREAKER_MOVES))
def test_a_session_cannot_move_the_breaker_without_a_call_of_its_own(
    runtime_engine: Engine,
    topology: Topology,
    two_tenants: TwoTenants,
    breaker_call: PendingCall,
    move: str,
    attacker: str,
    whose_call: str,
) -> None:
    """Another tenant or user, naming the victim's pending call or a call id that does not exist,
    neither opens the model's breaker (threshold 1) nor closes it."""
    target = breaker_call if whose_call == "the-victims" else PendingCall(breaker_call.owner, uuid.uuid4(), "")
    target = PendingCall(target.owner, target.call_id, breaker_call.request_id)
    ctx = attackers(breaker_call, two_tenants)[attacker]
    assert breaker_after(topology, runtime_engine, ctx, target, move) == BREAKER_MOVES[move][1]


@pytest.mark.parametrize("move", list(BREAKER_MOVES))
def test_control_the_calls_own_user_moves_its_models_breaker(
    runtime_engine: Engine, topology: Topology, breaker_call: PendingCall, move: str
) -> None:
    assert breaker_after(topology, runtime_engine, breaker_call.owner, breaker_call, move) == BREAKER_MOVES[move][2]


def test_control_a_fail_without_its_ownership_check_is_caught(
    runtime_engine: Engine, owner_engine: Engine, topology: Topology, two_tenants: TwoTenants, breaker_call: PendingCall
) -> None:
    """llm_fail that looks the call up by id alone: another tenant's session opens the breaker."""
    by_id_alone = replaced(
        owner_engine,
        "llm_fail",
        " AND c.status = 'pending' AND (c.tenant_id, c.user_id) IS NOT DISTINCT FROM (v_tenant, v_user)",
        "",
    )
    with by_id_alone:
        after = breaker_after(topology, runtime_engine, two_tenants.b.context, breaker_call, "fail")
    assert after == ("open", 1)  # the attack test above would have failed


# The boundary's calls carry their signed context as their last argument (migration 0030): verified
# exactly as the transaction's own. FAIL_PASSED and ADMIT_PASSED name it; no context is set beside.
ADMIT_PASSED = text(
    "SELECT call_id, verdict FROM llm_admit(:request, 'route', 1, 'cheap', 'mock', :model, 'sha', "
    "'base', 2, 1e9, false, 30, :token)"
)
FAIL_PASSED = text("SELECT llm_fail(:call, 'error', 1000, :token)")
PASSED = {
    "admit": ADMIT_PASSED,
    "route_admit": text(
        "SELECT verdict FROM llm_route_admit(:request, 'route', 1, 1, '{0.5,0.8}', '{standard,standard,economy}', "
        "'{mock-definer,mock-definer,mock-definer}', '{kb,kb,kb}', '{1,1,1}', 'mock', 'sha', 1e9, false, 30, :token)"
    ),
    "settle": text("SELECT llm_settle(:call, 1, 1e9, false, '{}', '{}', 'k', '{\"text\": \"x\"}', 1, 1, 1, :token)"),
    "fail": FAIL_PASSED,
}


@pytest.mark.parametrize("forgery", [*FORGERIES, "empty"])
@pytest.mark.parametrize("reach", list(PASSED))
def test_a_forged_context_passed_with_the_call_is_refused(
    runtime_engine: Engine, two_tenants: TwoTenants, forgery: str, reach: str
) -> None:
    token = "" if forgery == "empty" else FORGERIES[forgery](two_tenants)
    params = {"request": f"passed-{uuid.uuid4().hex}", "model": MODEL, "token": token, "call": uuid.uuid4()}
    with runtime_engine.connect() as conn, pytest.raises(ProgrammingError, match="no valid tenant context"):
        conn.execute(PASSED[reach], params)


def test_a_forged_context_passed_with_the_call_does_not_fall_back_to_the_transactions(
    runtime_engine: Engine, topology: Topology, two_tenants: TwoTenants, pending_call: PendingCall
) -> None:
    """In the owner's own transaction, a forgery passed with the call replaces the owner's context
    (it is set first): the call is refused, not run as the owner."""
    forged = FORGERIES["tenant-swapped"](two_tenants)
    with (
        pytest.raises(ProgrammingError, match="no valid tenant context"),
        tenant_transaction_sync(pending_call.owner, runtime_engine) as conn,
    ):
        conn.execute(FAIL_PASSED, {"call": pending_call.call_id, "token": forged})
    assert state(topology, pending_call) == UNTOUCHED


@pytest.mark.parametrize("where", ["no context beside", "in the owner's transaction"])
def test_control_the_owners_token_passed_with_the_call_acts_as_the_owner(
    runtime_engine: Engine, topology: Topology, pending_call: PendingCall, where: str
) -> None:
    """The token passed with the call is the whole context when none is set beside it; in the
    owner's own transaction it is the same owner (the control of the forgery test above)."""
    params = {"call": pending_call.call_id, "token": pending_call.owner.token()}
    if where == "no context beside":
        with runtime_engine.begin() as conn:
            conn.execute(FAIL_PASSED, params)
    else:
        with tenant_transaction_sync(pending_call.owner, runtime_engine) as conn:
            conn.execute(FAIL_PASSED, params)
    assert state(topology, pending_call)[0] == "failed"


def test_the_context_helper_is_not_the_runtimes_to_call(runtime_engine: Engine, pending_call: PendingCall) -> None:
    """app_required_context sets the token it is given: only app_system's functions call it."""
    with (
        pytest.raises(ProgrammingError, match="permission denied for function app_required_context"),
        runtime_engine.connect() as conn,
    ):
        conn.execute(text("SELECT * FROM app_required_context(:token)"), {"token": pending_call.owner.token()})


def test_another_tenants_valid_token_passed_with_the_call_reaches_only_its_own(
    runtime_engine: Engine, topology: Topology, two_tenants: TwoTenants, pending_call: PendingCall
) -> None:
    """B's valid token, passed with a call naming A's call id, acts as B: A's call is out of reach."""
    with runtime_engine.begin() as conn:
        conn.execute(FAIL_PASSED, {"call": pending_call.call_id, "token": two_tenants.b.context.token()})
    assert state(topology, pending_call) == UNTOUCHED


def test_a_call_admitted_before_the_breaker_opened_does_not_close_it(
    runtime_engine: Engine, topology: Topology, breaker_call: PendingCall
) -> None:
    """The owner's own pending call, admitted while the breaker was closed, succeeds after it opened:
    the breaker stays open (only a half-open trial's success closes it; the control is the settle
    move above, from half-open)."""
    after = breaker_from(topology, runtime_engine, breaker_call.owner, breaker_call, SETTLE_CLOSING, ("open", 3))
    assert after == ("open", 3)
