"""An LLM call reads the same pages however many answers its tenant has cached and however many
reservations all tenants have held: the cache lookup and the reservation's return go through an
index (migration 0013). Counted in pages read, not milliseconds (see test_outbox_watermark).
"""

from __future__ import annotations

import hashlib
import re
import uuid

import psycopg
import pytest
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from app.tenants.service import create_tenant
from scripts.harness import REPO_ROOT
from scripts.topology import Topology

from .conftest import superuser_dsn
from .test_outbox_watermark import ADMIT, BUDGET, pages_read

pytestmark = pytest.mark.integration

HISTORY = 20_000
FILL_CALLS = text(
    "INSERT INTO llm_api_calls (tenant_id, user_id, request_id, endpoint, prompt_sha256, status) "
    "SELECT :t, :u, 'history-' || g, 'route', repeat('0', 64), 'succeeded' FROM generate_series(1, :n) g"
)
FILL_RESERVATIONS = text(
    "INSERT INTO llm_budget_reservations (tenant_id, user_id, call_id, period_start, amount_cents, status) "
    "SELECT :t, :u, id, date_trunc('month', now())::date, 1, 'settled' FROM llm_api_calls "
    "WHERE request_id LIKE 'history-%'"
)
FILL_CACHE = text(
    "INSERT INTO llm_response_cache (tenant_id, cache_key, response) "
    'SELECT :t, md5(g::text) || md5(g::text), \'{"text": "old"}\' FROM generate_series(1, :n) g'
)
CACHED = text('INSERT INTO llm_response_cache (tenant_id, cache_key, response) VALUES (:t, :k, \'{"text": "hit"}\')')
# Controls: lookups no index can serve read every row, so this history makes a scan visible.
SCAN_RESERVATIONS = "SELECT count(*) FROM llm_budget_reservations WHERE call_id::text = 'none'"
SCAN_CACHE = "SELECT count(*) FROM llm_response_cache WHERE cache_key || '' = 'none'"


def cache_hit_pages(engine: Engine, owner: Engine, history: int) -> tuple[int, dict[str, int]]:
    """Pages one cache-hit llm_admit reads for a new tenant with ``history`` earlier calls, each with
    its reservation and cached answer, and what the control scans read."""
    with engine.begin() as conn:
        tenant = create_tenant(conn, f"history-{uuid.uuid4().hex[:6]}", user_id="probe")
    params = {"t": tenant.tenant_id, "u": tenant.context.user_id, "n": history}
    # The key llm_admit computes for 'key-base' while the tenant has no outbox rows (watermark 0).
    hit_key = hashlib.sha256(b"key-base:0").hexdigest()
    with tenant_transaction_sync(tenant.context, engine) as conn:
        for fill in (BUDGET, FILL_CALLS, FILL_RESERVATIONS, FILL_CACHE):
            conn.execute(fill, params)
        conn.execute(CACHED, {"t": tenant.tenant_id, "k": hit_key})
    # As autovacuum would soon: fresh statistics, and plans cached while the tables were small
    # (a scan of one page beats any index) are planned again.
    with owner.begin() as conn:
        conn.execute(text("ANALYZE llm_api_calls, llm_budget_reservations, llm_response_cache"))
    with tenant_transaction_sync(tenant.context, engine) as conn:
        scans = {"reservations": pages_read(conn, SCAN_RESERVATIONS), "cache": pages_read(conn, SCAN_CACHE)}
        pages_read(conn, ADMIT.format(request="warm-up"))  # the first call also reads the catalogs to plan
        verdict = conn.execute(text(ADMIT.format(request="verdict"))).one().verdict
        assert verdict == "cached", "the measured call must take the cache-hit path (lookup, then return)"
        # The lower of two: a call that happens to plan again (autovacuum's statistics invalidate
        # cached plans) also reads the catalogs, which says nothing about the lookups.
        measured = min(pages_read(conn, ADMIT.format(request=f"measured-{n}")) for n in range(2))
        return measured, scans


def test_a_cache_hit_reads_no_more_pages_with_a_long_history(runtime_engine: Engine, owner_engine: Engine) -> None:
    fresh, _ = cache_hit_pages(runtime_engine, owner_engine, history=0)
    long, scans = cache_hit_pages(runtime_engine, owner_engine, history=HISTORY)
    assert min(scans.values()) > 100, f"the controls should scan the history ({scans} pages)"
    assert long <= fresh + 30, f"a cache hit read {long} pages with a long history, {fresh} without; scans {scans}"


# The ledger row's lookup in llm_settle, llm_fail and llm_finish, as their files write it (migration
# 0030): its plan is cached by PL/pgSQL, possibly while llm_api_calls is still small, and must reach
# the row through the primary key whatever the statistics were then.
FUNCTIONS = REPO_ROOT / "backend" / "sql" / "functions"
LEDGER_LOOKUP = re.compile(
    r"WHERE (?:c\.)?id = p_call AND (?:c\.)?status = 'pending' AND "
    r"\((?:c\.)?tenant_id, (?:c\.)?user_id\) IS NOT DISTINCT FROM \([pv]_tenant, [pv]_user\)"
)
EMPTY_COPY = "CREATE TEMP TABLE llm_api_calls (LIKE public.llm_api_calls INCLUDING INDEXES)"


def ledger_lookup(function: str) -> str:
    found = LEDGER_LOOKUP.findall((FUNCTIONS / f"{function}.sql").read_text(encoding="utf-8"))
    assert len(found) == 1, f"{function}.sql: expected one ledger lookup, found {found}"
    where = re.sub(r"\bc\.", "", found[0])
    for name, number in (("p_call", "$1"), ("v_tenant", "$2"), ("p_tenant", "$2"), ("v_user", "$3"), ("p_user", "$3")):
        where = where.replace(name, number)
    return f"SELECT 1 FROM llm_api_calls {where}"


def generic_plan_on_an_empty_table(topology: Topology, query: str) -> str:
    """The plan PostgreSQL caches for ``query`` when it is planned once for all parameter values
    while llm_api_calls is empty, as on a fresh database (a temporary empty copy, rolled back)."""
    with psycopg.connect(superuser_dsn(topology)) as conn:
        conn.execute(EMPTY_COPY)
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE ledger_lookup (uuid, uuid, text) AS {query}")
        rows = conn.execute(f"EXPLAIN EXECUTE ledger_lookup ('{uuid.uuid4()}', '{uuid.uuid4()}', 'u')").fetchall()
        conn.rollback()
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("function", ["llm_settle", "llm_fail", "llm_finish"])
def test_the_ledger_row_is_found_by_its_primary_key_even_in_a_plan_made_on_an_empty_table(
    topology: Topology, function: str
) -> None:
    plan = generic_plan_on_an_empty_table(topology, ledger_lookup(function))
    assert "Index Cond: (id = $1)" in plan, plan


def test_control_the_ownership_check_as_equalities_walks_the_tenants_calls(topology: Topology) -> None:
    """As before 0030: the same lookup with equalities reaches the row by the tenant's index instead."""
    equalities = ledger_lookup("llm_settle").replace(
        "(tenant_id, user_id) IS NOT DISTINCT FROM ($2, $3)", "tenant_id = $2 AND user_id = $3"
    )
    plan = generic_plan_on_an_empty_table(topology, equalities)
    assert "Index Cond: (tenant_id = $2)" in plan, plan
