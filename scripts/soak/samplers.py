"""What one soak sample reads: each service's memory, and the database's sizes, backlog and lag.

Memory is anonymous RSS (resident minus shared, summed over a service's processes): what a leak
grows. Total RSS is recorded beside it; for PostgreSQL it mostly counts shared buffers each backend
has touched, which grows towards shared_buffers in any healthy run. Each process's own anonymous
RSS is kept too (``by_pid``): PostgreSQL's process tree gains and loses processes that are no leak
(an autovacuum worker, a backend a pool opened), and the verdict judges the processes that lived
through its whole window apart from how many there were.

The database is read as ops_reader (read-only, across tenants). ``PRUNED_TABLES`` are those
housekeeping keeps bounded and the verdict judges; every other table is recorded too, and the data
and ledger tables among them grow with traffic by design (events, dead letters, LLM calls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psutil
from sqlalchemy import Engine, text

from scripts.topology.processes import group_members

PRUNED_TABLES = (
    "outbox",
    "kombu_message",
    "celery_taskmeta",
    "llm_response_cache",
    "llm_jobs",
    "investigations",
    "budget_optimization_jobs",
    "attribution_jobs",
)
SIZES_SQL = text(
    "SELECT c.relname AS name, pg_table_size(c.oid) AS table_bytes, pg_indexes_size(c.oid) AS index_bytes "
    "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
)
ROWS_SQL = text(" UNION ALL ".join(f"SELECT '{t}' AS name, count(*) AS n FROM {t}" for t in PRUNED_TABLES))
# The oldest recompute not yet done is how far attribution lags behind what the intake accepted.
STATE_SQL = text(
    """
    SELECT (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL) AS outbox_backlog,
           (SELECT count(*) FROM kombu_message WHERE visible) AS broker_depth,
           coalesce((SELECT extract(epoch FROM now() - min(created_at)) FROM outbox
                     WHERE kind = 'attribution_recompute' AND completed_at IS NULL), 0)::float8 AS attribution_lag_s
    """
)


@dataclass(frozen=True)
class Memory:
    rss: int
    anon: int
    processes: int
    by_pid: dict[str, int]  # anonymous RSS per process (str keys: the samples are JSON)


def service_memory(pids: list[psutil.Process]) -> Memory:
    rss = anon = alive = 0
    by_pid: dict[str, int] = {}
    for proc in pids:
        try:
            info = proc.memory_info()
        except psutil.Error:  # a pool child replaced between listing and reading
            continue
        own = info.rss - getattr(info, "shared", 0)
        rss += info.rss
        anon += own
        by_pid[str(proc.pid)] = own
        alive += 1
    return Memory(rss, anon, alive, by_pid)


def process_tree(pid: int | None, *, group: bool) -> list[psutil.Process]:
    """A service's processes: its process group (api, worker, mock), or a process and its children
    (PostgreSQL, whose backends the postmaster forks)."""
    if pid is None:
        return []
    if group:
        return group_members(pid)
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def memory(services: dict[str, tuple[int | None, bool]]) -> dict[str, Memory]:
    """{service: (pid, is_process_group)} -> each service's memory now."""
    return {name: service_memory(process_tree(pid, group=group)) for name, (pid, group) in services.items()}


def database(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        sizes = {row.name: (int(row.table_bytes), int(row.index_bytes)) for row in conn.execute(SIZES_SQL)}
        rows = {row.name: int(row.n) for row in conn.execute(ROWS_SQL)}
        state = conn.execute(STATE_SQL).one()
    return {
        "sizes": sizes,
        "rows": rows,
        "outbox_backlog": int(state.outbox_backlog),
        "broker_depth": int(state.broker_depth),
        "attribution_lag_s": float(state.attribution_lag_s),
    }
