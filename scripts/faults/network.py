"""Fault scenarios across the network-namespace topology (scripts/topology/netns.py), under load.

- ``postgres_crash``: SIGKILL of the postmaster (no shutdown checkpoint), its backends killed as a
  supervisor's cgroup kill would, then a start that must run crash recovery;
- ``partition_api_postgres``: the api's link to PostgreSQL cut for PARTITION_S, then healed; while
  cut the api must answer 503 with Retry-After (never 500) within REQUEST_LIMIT_S, and must accept
  again within HEAL_LIMIT_S of the heal;
- ``partition_worker_postgres``: the worker's link cut for PARTITION_S while relay and tasks are busy;
  after the heal the worker must serve again and the backlog drain, with nothing applied twice.

Each ends with the same per-tenant count verdict and negative control as scenarios.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psutil
from sqlalchemy import Engine

from scripts.faults.scenarios import (
    REQUEST_LIMIT_S,
    ScenarioResult,
    first_ack_after,
    judged,
    start_load,
    wait_worker_healthy,
)
from scripts.r3 import database
from scripts.r3.openloop import RunRecord
from scripts.r3.storms import VALID_ONLY, StormPlan
from scripts.topology import Topology

PARTITION_S = 10.0
HEAL_LIMIT_S = 2.0  # the bound: the api accepts again within this of the heal
CHILD_EXIT_S = 10.0  # how long backends get to notice their postmaster died before the "cgroup kill"


def crash_postgres(topology: Topology) -> dict[str, Any]:
    """SIGKILL the postmaster, then whatever of its backends outlive it; nothing is shut down cleanly."""
    embedded = topology.embedded
    if embedded is None:
        raise RuntimeError("the crash scenario needs the embedded server")
    pid = embedded.pid()
    if pid is None:
        raise RuntimeError("PostgreSQL is not running")
    children = psutil.Process(pid).children(recursive=True)
    os.kill(pid, signal.SIGKILL)
    _, alive = psutil.wait_procs(children, timeout=CHILD_EXIT_S)
    for child in alive:
        child.kill()
    return {"killed_pid": pid, "backends": len(children), "backends_killed_after_wait": len(alive)}


def postgres_crash(topology: Topology, engine: Engine, rate: float, duration_s: float) -> ScenarioResult:
    load = start_load(topology, engine, rate, duration_s)
    time.sleep(duration_s / 4)
    killed = crash_postgres(topology)
    time.sleep(1.0)  # a supervisor notices and starts it again
    crashed_log_from = _log_size(topology)
    topology.start_postgres()
    restarted = time.perf_counter()
    record = load.join()
    engine.dispose()  # our pooled connections died with the server
    result = judged("postgres_crash", topology, engine, load, record, first_ack_after(record, restarted), 120)
    recovery_logged = "database system was not properly shut down" in _log_since(topology, crashed_log_from)
    worker = wait_worker_healthy(topology)
    result.details.update(
        killed,
        crash_recovery_logged=recovery_logged,  # proof it was a crash, not a clean restart
        worker_healthy_after_s=round(worker.elapsed_s, 3) if worker.ok else None,
    )
    if not recovery_logged:
        result.status = "failed"
    return result


def _log_size(topology: Topology) -> int:
    assert topology.embedded is not None
    try:
        return topology.embedded.logfile.stat().st_size
    except OSError:
        return 0


def _log_since(topology: Topology, offset: int) -> str:
    assert topology.embedded is not None
    try:
        with topology.embedded.logfile.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def probe_during_cut(topology: Topology, plan: StormPlan, stop: threading.Event, out: list[dict[str, Any]]) -> None:
    """Webhooks of a tenant of their own while the link is cut: status, Retry-After and how long each
    answer took (the load's outcomes keep no headers). The probe tenant is not judged for counts."""
    with httpx.Client(base_url=topology.api_url, timeout=REQUEST_LIMIT_S + 5) as client:
        for index in range(10_000):
            if stop.is_set():
                return
            shot = plan.shot(index)
            started = time.monotonic()
            try:
                response = client.request(shot.method, shot.path, content=shot.body, headers=shot.headers)
                status, retry_after = response.status_code, response.headers.get("Retry-After")
            except httpx.HTTPError as exc:
                status, retry_after = None, type(exc).__name__
            out.append({"status": status, "retry_after": retry_after, "s": round(time.monotonic() - started, 3)})
            stop.wait(0.5)


def cut_window(record: RunRecord, cut_at: float, healed_at: float) -> dict[str, Any]:
    """What the load saw from requests sent while the link was cut (perf_counter moments)."""
    start, end = cut_at - record.origin, healed_at - record.origin
    during = [o for o in record.outcomes if start <= o.started_s < end]
    statuses: dict[str, int] = {}
    for outcome in during:
        key = str(outcome.status) if outcome.status is not None else (outcome.error or "no answer")
        statuses[key] = statuses.get(key, 0) + 1
    # The answer time counts from when the request was sent, its wait for a connection included: the
    # load opens enough connections never to queue one of its own (scenarios.generator_connections),
    # so a long wait there is an api that stopped accepting connections, and that is a hang too.
    slowest = max((o.done_s - o.started_s for o in during), default=0.0)
    queued = max((o.connected_s - o.started_s for o in during), default=0.0)
    return {
        "sent_during_cut": len(during),
        "answers_during_cut": statuses,
        "slowest_answer_s": round(slowest, 3),
        "longest_wait_for_a_connection_s": round(queued, 3),
    }


def partition(role: str) -> Callable[[Topology, Engine, float, float], ScenarioResult]:
    """The scenario cutting ``role`` (api or worker) off PostgreSQL for PARTITION_S."""

    def scenario(topology: Topology, engine: Engine, rate: float, duration_s: float) -> ScenarioResult:
        if topology.netns is None:
            raise RuntimeError("partitions need the netns topology")
        lead_s = duration_s / 4
        load = start_load(topology, engine, rate, max(duration_s, lead_s + PARTITION_S + 8))
        time.sleep(lead_s)
        stop, probes = threading.Event(), []  # type: ignore[var-annotated]
        tag = f"probe-{uuid.uuid4().hex[:6]}"
        probe_plan = StormPlan(database.provision_tenants(engine, 1, tag), tag, 2.0, weights=dict(VALID_ONLY))
        prober = threading.Thread(target=probe_during_cut, args=(topology, probe_plan, stop, probes), daemon=True)
        topology.netns.set_partition(role, cut=True)
        cut_at = time.perf_counter()
        try:
            if role == "api":
                prober.start()
            time.sleep(PARTITION_S)
        finally:
            topology.netns.set_partition(role, cut=False)
            stop.set()
        healed_at = time.perf_counter()
        if role == "worker":
            worker = wait_worker_healthy(topology, timeout_s=90)
            recovery = round(time.perf_counter() - healed_at, 3) if worker.ok else None
        record = load.join()
        prober.join(timeout=REQUEST_LIMIT_S + 10) if prober.is_alive() else None
        if role == "api":
            recovery = first_ack_after(record, healed_at)
        result = judged(f"partition_{role}_postgres", topology, engine, load, record, recovery, 120)
        window = cut_window(record, cut_at, healed_at)
        result.details.update(window, partition_s=PARTITION_S, probes_during_cut=probes)
        problems = partition_problems(role, window, probes, recovery)
        result.details["problems"] = problems
        if problems:
            result.status = "failed"
        return result

    return scenario


def partition_problems(
    role: str, window: dict[str, Any], probes: list[dict[str, Any]], recovery_s: float | None
) -> list[str]:
    """What the partition bounds say about one run (the count verdict is judged separately)."""
    problems = []
    answers: dict[str, int] = window["answers_during_cut"]
    if role == "api":
        if window["slowest_answer_s"] > REQUEST_LIMIT_S:
            problems.append(f"a request sent during the cut took {window['slowest_answer_s']} s > {REQUEST_LIMIT_S}")
        if any(key == "500" for key in answers):
            problems.append("a 500 during the cut")
        if not any(p["status"] == 503 and p["retry_after"] for p in probes):
            problems.append("no 503 with Retry-After while the api was cut off")
        if recovery_s is None or recovery_s > HEAL_LIMIT_S:
            problems.append(f"first acceptance {recovery_s} s after the heal (limit {HEAL_LIMIT_S})")
    elif any(key not in ("200", "202") for key in answers):
        problems.append(f"the api (still connected) refused work while only the worker was cut: {answers}")
    return problems


NETNS_SCENARIOS: dict[str, Callable[[Topology, Engine, float, float], ScenarioResult]] = {
    "postgres_crash": postgres_crash,
    "partition_api_postgres": partition("api"),
    "partition_worker_postgres": partition("worker"),
}
