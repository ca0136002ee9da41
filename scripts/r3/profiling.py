"""Where the time goes during one load step: ``ingestion_under_fire.py --profile-processes``.

A sampler in its own process (so it never stalls the generator's event loop) records, once per
interval while a step runs:

- CPU per process role (psutil): api, worker, postgres (backends, autovacuum, background writers),
  the generator, the lag observer, the HTTP peer, k6, and everything else on the machine as
  ``other`` (a neighbour's load is part of every figure, so it is named, not hidden). A process is
  this run's only if it descends from the generator's parent (the gate or test that started the
  topology) or, for PostgreSQL, belongs to the server behind the DSN; a neighbour's api or
  database shows as ``other:api``, ``other:postgres``;
- the api's answer time to ``GET /health/live`` (one cheap request per interval: an upper bound on
  its event-loop lag, since a blocked loop answers nothing);
- PostgreSQL wait events of every session the DSN's role may see (``pg_stat_activity``);
- the machine's idle, I/O-wait and stolen cores (a stall while no process is busy is the disk or
  the host, not our code);

and, between the step's start and end, the deltas of ``pg_stat_user_functions`` (needs
``track_functions``), ``pg_stat_statements`` (needs the extension) and ``pg_stat_user_tables``
(dead rows, autovacuum and autoanalyze runs). A source the server does not offer is reported as
unavailable with the reason, never silently left out.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any

import psutil
from sqlalchemy import Connection, Engine, text

from scripts.harness import redact_dsn
from scripts.r3.database import runtime_engine
from scripts.r3.lag import nearest_rank

INTERVAL_S = 1.0
TOP_STATEMENTS = 15
# A process belongs to the first role whose marker appears in its own or an ancestor's command line.
ROLE_MARKERS = (
    ("app.api_server", "api"),
    ("app.worker", "worker"),
    ("scripts.r3.http_peer", "http_peer"),
    ("llm_background_load", "llm_background_load"),
    ("mock_platform", "mock_platform"),
)
POSTGRES_HELPERS = ("autovacuum", "checkpointer", "walwriter", "background writer", "wal writer", "logical")

WAITS_SQL = text(
    "SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, state, '?') AS wait, count(*) AS n "
    "FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle' "
    "AND backend_type = 'client backend' GROUP BY 1"
)
FUNCTIONS_SQL = text(
    "SELECT schemaname || '.' || funcname AS name, calls, total_time, self_time FROM pg_stat_user_functions"
)
STATEMENTS_SQL = text(
    "SELECT queryid::text AS id, left(query, 160) AS query, calls, total_exec_time AS total_ms, rows "
    "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
TABLES_SQL = text(
    "SELECT relname AS name, n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count, n_tup_ins "
    "FROM pg_stat_user_tables"
)
# pg_settings hides what the role may not read (NULL here), where current_setting() would raise.
SETTINGS_SQL = text(
    "SELECT (SELECT setting FROM pg_settings WHERE name = 'track_functions') AS track_functions, "
    "(SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS shared_preload_libraries, "
    "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS pg_stat_statements"
)


@dataclass(frozen=True)
class Scope:
    """Which processes are this run's: named pids, the tree under ``root`` (the generator's parent,
    which started the topology in a gate or a test), and the PostgreSQL server behind the DSN."""

    special: dict[int, str]
    root: int
    postmaster: int | None = None


def role_of(proc: psutil.Process, scope: Scope) -> str:
    """The role a process plays: its own marker, else an ancestor's; ``other:<role>`` when it is a
    neighbour's (outside this run's tree or server), ``other`` when it has no role at all."""
    try:
        if proc.pid in scope.special:
            return scope.special[proc.pid]
        name = proc.name()
        if name.startswith("postgres"):
            title = " ".join(proc.cmdline())
            helper = next((h for h in POSTGRES_HELPERS if h in title), None)
            role = f"postgres:{helper.replace(' ', '_')}" if helper else "postgres"
            ours = scope.postmaster is not None and scope.postmaster in (proc.pid, proc.ppid())
            return role if ours else "other:postgres"
        lineage = [proc, *proc.parents()]
        ours = any(candidate.pid == scope.root for candidate in lineage)
        if name == "k6":
            return "k6" if ours else "other:k6"
        for candidate in lineage:
            if candidate.pid in scope.special:
                return scope.special[candidate.pid]
            line = " ".join(candidate.cmdline())
            for marker, role in ROLE_MARKERS:
                if marker in line:
                    return role if ours else f"other:{role}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "other"
    return "other"


def label_of(proc: psutil.Process) -> str:
    """What a neighbour is, without its arguments (another run's command line may hold anything):
    the executable, and the module or script it runs."""
    try:
        line = proc.cmdline()
        name = proc.name()
    except psutil.Error:
        return "?"
    for at, arg in enumerate(line[1:], start=1):
        if arg == "-m" and at + 1 < len(line):
            return f"{name} -m {line[at + 1]}"
        if arg.endswith(".py"):
            return f"{name} {os.path.basename(arg)}"
    return name


class _CpuSampler:
    """CPU seconds per role between two calls, from every process on the machine; the neighbours'
    (``other``) also by what they run, so a busy machine's culprit is named."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.last: dict[int, tuple[float, str]] = {}
        self.started = time.monotonic()
        self.others: dict[str, float] = defaultdict(float)
        self.sample()

    def sample(self) -> dict[str, float]:
        used: dict[str, float] = defaultdict(float)
        current: dict[int, tuple[float, str]] = {}
        for proc in psutil.process_iter(["pid"]):
            try:
                times = proc.cpu_times()
                total = times.user + times.system
                role = self.last[proc.pid][1] if proc.pid in self.last else role_of(proc, self.scope)
                fresh = proc.pid not in self.last and proc.create_time() > time.time() - (
                    time.monotonic() - self.started
                )
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            before = self.last[proc.pid][0] if proc.pid in self.last else (0.0 if fresh else total)
            used[role] += max(0.0, total - before)
            if role.startswith("other") and total > before:
                self.others[label_of(proc)] += total - before
            current[proc.pid] = (total, role)
        self.last = current
        return used


def _counters(conn: Connection, statement: Any, key: str) -> dict[str, dict[str, Any]]:
    return {str(row[key]): dict(row) for row in conn.execute(statement).mappings()}


def _delta(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], fields: tuple[str, ...]
) -> list[dict[str, Any]]:
    rows = []
    for key, row in after.items():
        old = before.get(key, {})
        changed = {f: round(float(row[f] or 0) - float(old.get(f) or 0), 3) for f in fields}
        if any(changed.values()):
            rows.append({**{k: v for k, v in row.items() if k not in fields}, **changed})
    return rows


class _PgSampler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with engine.connect() as conn:
            self.settings = dict(conn.execute(SETTINGS_SQL).mappings().one())
            backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        self.postmaster: int | None = None  # a server on another machine has no process here
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(backend)
            if process.name().startswith("postgres"):  # not a local pid that only looks the same
                self.postmaster = process.ppid()
        self.start = self._cumulative()

    def _cumulative(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        with self.engine.connect() as conn:
            found["functions"] = _counters(conn, FUNCTIONS_SQL, "name")
            found["tables"] = _counters(conn, TABLES_SQL, "name")
            if self.settings["pg_stat_statements"]:
                try:
                    found["statements"] = _counters(conn, STATEMENTS_SQL, "id")
                except Exception as exc:  # the view errors until the library is preloaded
                    found["statements_error"] = f"{type(exc).__name__}"
        return found

    def waits(self) -> Counter[str]:
        with self.engine.connect() as conn:
            return Counter({str(row.wait): int(row.n) for row in conn.execute(WAITS_SQL)})

    def deltas(self) -> dict[str, Any]:
        end = self._cumulative()
        report: dict[str, Any] = {"settings": self.settings}
        if self.settings["track_functions"] in ("none", None):
            setting = self.settings["track_functions"] or "not readable by this role"
            report["pg_stat_user_functions"] = {"unavailable": f"track_functions = {setting} on this server"}
        else:
            report["pg_stat_user_functions"] = sorted(
                _delta(self.start["functions"], end["functions"], ("calls", "total_time", "self_time")),
                key=lambda r: -float(r["total_time"]),
            )
        if "statements" in end:
            rows = _delta(self.start.get("statements", {}), end["statements"], ("calls", "total_ms", "rows"))
            report["pg_stat_statements"] = sorted(rows, key=lambda r: -float(r["total_ms"]))[:TOP_STATEMENTS]
        else:
            reason = end.get("statements_error") or "extension pg_stat_statements not installed in this database"
            report["pg_stat_statements"] = {"unavailable": reason}
        fields = ("n_dead_tup", "autovacuum_count", "autoanalyze_count", "n_tup_ins")
        report["pg_stat_user_tables"] = _delta(self.start["tables"], end["tables"], fields)
        return report


def machine_cores(before: Any, elapsed_s: float) -> tuple[Any, dict[str, float]]:
    """The whole machine's cores spent idle, waiting on I/O and stolen by the hypervisor since
    ``before``: a stall with no process busy is the disk or the host, not our code."""
    now = psutil.cpu_times()
    found = {
        key: round(max(0.0, getattr(now, key) - getattr(before, key)) / max(elapsed_s, 1e-9), 3)
        for key in ("idle", "iowait", "steal")
        if hasattr(now, key)
    }
    return now, found


def _probe_ms(base_url: str) -> float | None:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{base_url}/health/live", timeout=5) as answer:  # noqa: S310 -- our api
            answer.read()
    except OSError:
        return None
    return (time.perf_counter() - started) * 1000


def _sample(pipe: Pipe, dsn: str | None, api_url: str | None, special: dict[int, str], interval_s: float) -> None:
    special = {**special, os.getpid(): "profiler"}
    pg, pg_error = None, None
    if dsn:
        try:
            pg = _PgSampler(runtime_engine(dsn))
        except Exception as exc:  # the CPU profile is still worth having; the reason is reported
            pg_error = f"{type(exc).__name__}: {redact_dsn((str(exc).splitlines() or [''])[0])[:200]}"
    generator = next(pid for pid, role in special.items() if role == "generator")
    cpu = _CpuSampler(Scope(special, psutil.Process(generator).ppid(), pg.postmaster if pg else None))
    timeline: list[dict[str, Any]] = []
    waits: Counter[str] = Counter()
    probes: list[float] = []
    probe_failures = 0
    pipe.send("ready")
    last = time.monotonic()
    machine = psutil.cpu_times()
    while not pipe.poll(max(0.0, last + interval_s - time.monotonic())):
        now = time.monotonic()
        used = cpu.sample()
        sample: dict[str, Any] = {"t_s": round(now - cpu.started, 2)}
        sample["cores"] = {role: round(seconds / (now - last), 3) for role, seconds in sorted(used.items())}
        machine, sample["machine"] = machine_cores(machine, now - last)
        last = now
        if pg is not None:
            seen = pg.waits()
            waits.update(seen)
            sample["pg_waits"] = dict(seen)
        if api_url:
            probe = _probe_ms(api_url)
            probe_failures += probe is None
            if probe is not None:
                probes.append(probe)
                sample["api_probe_ms"] = round(probe, 2)
        timeline.append(sample)
    report: dict[str, Any] = {"interval_s": interval_s, "samples": len(timeline), "timeline": timeline}
    if pg_error:
        report["postgres_unavailable"] = pg_error
    roles = {role for s in timeline for role in s["cores"]}
    report["cores_mean"] = {
        role: round(sum(s["cores"].get(role, 0.0) for s in timeline) / max(1, len(timeline)), 3)
        for role in sorted(roles)
    }
    report["cores_max"] = {role: max(s["cores"].get(role, 0.0) for s in timeline) for role in sorted(roles)}
    report["machine_mean"] = {
        key: round(sum(s["machine"].get(key, 0.0) for s in timeline) / max(1, len(timeline)), 3)
        for key in ("idle", "iowait", "steal")
    }
    report["pg_wait_samples"] = dict(waits.most_common())
    elapsed = max(1e-9, time.monotonic() - cpu.started)
    busiest = sorted(cpu.others.items(), key=lambda item: -item[1])[:8]
    report["other_top_cores"] = {label: round(used / elapsed, 3) for label, used in busiest}
    if api_url:
        report["api_probe_ms"] = (
            {
                "p50": round(nearest_rank(probes, 50), 2),
                "p99": round(nearest_rank(probes, 99), 2),
                "max": round(max(probes), 2),
            }
            if probes
            else None
        )
        report["api_probe_failures"] = probe_failures
    if pg is not None:
        report.update(pg.deltas())
        pg.engine.dispose()
    pipe.send(report)


class ProcessProfiler:
    """Samples while the ``with`` block runs; ``report`` holds the result after it."""

    def __init__(
        self,
        dsn: str | None,
        api_url: str | None,
        special: dict[int, str] | None = None,
        interval_s: float = INTERVAL_S,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        roles = {os.getpid(): "generator", **(special or {})}
        self._process = context.Process(
            target=_sample, args=(child, dsn, api_url, roles, interval_s), name="r3-profiler"
        )
        self.report: dict[str, Any] = {}

    def __enter__(self) -> ProcessProfiler:
        self._process.start()
        if not self._pipe.poll(60) or self._pipe.recv() != "ready":
            self._process.terminate()
            raise RuntimeError("the process profiler did not start")
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self._pipe.send("stop")
            if self._pipe.poll(60):
                self.report = self._pipe.recv()
        finally:
            if self._process.is_alive():
                self._process.terminate()
            self._process.join(timeout=10)


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The few figures a step carries inline; the whole report is written beside the step's results."""
    keys = ("cores_mean", "cores_max", "machine_mean", "other_top_cores", "api_probe_ms", "pg_wait_samples")
    return {key: report[key] for key in keys if key in report}
