"""Fault scenarios under steady webhook load: what was acknowledged must be stored exactly once.

Each webhook scenario sends valid signed events at a fixed rate (the ingestion-under-fire
generator, storms off) on fresh tenants, injects one fault a few seconds in, repairs it the way a
supervisor would, and then counts: every webhook answered 2xx must be in the database exactly
once and attributed. The LLM scenario does the same for LLM tasks and the ledger, and checks that
each fault was taken by the mock and left its own outcomes in the ledger.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from sqlalchemy import Engine, text

from app.core.db import tenant_transaction_sync
from scripts.harness import PollOutcome, poll_until
from scripts.phase8.llm_background_load import finished_calls, task_shot, wait_ledgered
from scripts.r3 import database
from scripts.r3.openloop import RunRecord, answer_counts, fire
from scripts.r3.storms import VALID_ONLY, StormPlan
from scripts.topology import Topology

STORED_IDS_SQL = text("SELECT external_event_id, count(*) FROM attribution_events GROUP BY 1")
OVER_BUDGET_SQL = text("SELECT count(*) FROM llm_budget_periods WHERE reserved_cents + spent_cents > limit_cents")
FIRST_SUCCESS_SQL = text(
    "SELECT min(finished_at) FROM llm_api_calls WHERE status = 'succeeded' AND created_at >= :since"
)


@dataclass
class ScenarioResult:
    name: str
    acknowledged: int
    persisted: int
    lost: int
    duplicated: int
    recovery_s: float | None
    status: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "acknowledged": self.acknowledged,
            "persisted": self.persisted,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "recovery_s": self.recovery_s,
            "status": self.status,
            **self.details,
        }


@dataclass
class Background:
    """The generator running in its own thread while the main thread breaks things."""

    plan: StormPlan
    record: RunRecord | None = None
    thread: threading.Thread | None = None

    def join(self) -> RunRecord:
        assert self.thread is not None
        self.thread.join()
        assert self.record is not None, "the load thread died; see the log"
        return self.record


# A request started during a fault must be answered (503, or 2xx) within this, or it counts as hung:
# the api's database deadline (DB_CALL_TIMEOUT_S, 3 s by default) plus room for a busy machine, and
# half a partition, so an api that simply waits for the link to come back cannot pass.
REQUEST_LIMIT_S = 5.0


def generator_connections(rate: float) -> int:
    """Enough connections that the load never queues a request of its own while each earlier one is
    held for up to REQUEST_LIMIT_S (and a second more): a wait in the client's pool would hide an api
    that stopped accepting connections, and would charge the client's queue to the api."""
    return max(256, math.ceil(rate * (REQUEST_LIMIT_S + 1)))


def start_load(topology: Topology, engine: Engine, rate: float, duration_s: float) -> Background:
    run_tag = uuid.uuid4().hex[:10]
    tenants = database.provision_tenants(engine, 4, run_tag)
    plan = StormPlan(tenants, run_tag, rate, weights=dict(VALID_ONLY))
    background = Background(plan)

    def run() -> None:
        background.record = asyncio.run(
            fire(
                topology.api_url,
                plan.shot,
                rate=rate,
                duration_s=duration_s,
                connections=generator_connections(rate),
                timeout_s=15,
            )
        )

    background.thread = threading.Thread(target=run, name="load", daemon=True)
    background.thread.start()
    return background


def wait_worker_healthy(topology: Topology, timeout_s: float = 60) -> PollOutcome:
    """Until a probe task has gone through the broker and back (the worker serves again)."""
    return poll_until(f"{topology.api_url}/health/worker?fresh=true", timeout_s=timeout_s, interval_s=0.2)


def first_ack_after(record: RunRecord, moment: float) -> float | None:
    """Seconds from ``moment`` (perf_counter) to the first 2xx of a request sent after it."""
    offset = moment - record.origin
    done = [o.done_s for o in record.outcomes if o.started_s >= offset and o.status in (200, 202)]
    return round(min(done) - offset, 3) if done else None


def acknowledged_by_tenant(plan: StormPlan, record: RunRecord) -> dict[int, set[str]]:
    """The external ids each tenant's 2xx answers acknowledged."""
    acked: dict[int, set[str]] = {index: set() for index in range(len(plan.tenants))}
    for outcome in record.outcomes:
        if outcome.status in (200, 202):
            sent = plan.sent[outcome.tag]
            acked[sent.tenant].add(sent.external_id)
    return acked


def tenant_counts(acked: set[str], stored: dict[str, int]) -> dict[str, int]:
    """One tenant's exact counts: what it acknowledged, and how much of that is missing or stored twice."""
    return {
        "acknowledged": len(acked),
        "persisted": len(acked & set(stored)),
        "lost": len(acked - set(stored)),
        "duplicated": sum(count - 1 for count in stored.values() if count > 1),
        "stored_without_ack": len(set(stored) - acked),  # committed, but the answer never arrived
    }


def judge_webhooks(
    name: str, engine: Engine, plan: StormPlan, record: RunRecord, recovery_s: float | None, drain_timeout_s: float
) -> ScenarioResult:
    """Per tenant, exactly once: every acknowledged event stored once, none twice, every conversion attributed."""
    acked = acknowledged_by_tenant(plan, record)
    attributed, drain_s = database.wait_attributed(engine, plan.tenants, drain_timeout_s)
    per_tenant: dict[str, dict[str, int]] = {}
    for index, tenant in enumerate(plan.tenants):
        with tenant_transaction_sync(tenant.context, engine) as conn:
            stored = {row[0]: int(row[1]) for row in conn.execute(STORED_IDS_SQL)}
        counts = database.stored_counts(engine, tenant)
        per_tenant[str(index)] = {
            **tenant_counts(acked[index], stored),
            "conversions": counts.conversions,
            "unattributed_conversions": counts.conversions - counts.attributed_conversions,
        }
    total = {key: sum(t[key] for t in per_tenant.values()) for key in next(iter(per_tenant.values()))}
    unexplained = sum(1 for o in record.outcomes if o.status is not None and o.status >= 500 and o.status != 503)
    ok = (
        total["lost"] == 0
        and total["duplicated"] == 0
        and unexplained == 0  # an outage is a 503 with Retry-After, never a bare 500
        and attributed
        # per tenant: one tenant's missing attribution must not hide behind another's double one
        and all(counts["unattributed_conversions"] == 0 for counts in per_tenant.values())
        and recovery_s is not None
    )
    return ScenarioResult(
        name,
        acknowledged=total["acknowledged"],
        persisted=total["persisted"],
        lost=total["lost"],
        duplicated=total["duplicated"],
        recovery_s=recovery_s,
        status="passed" if ok else "failed",
        details={
            "sent": len(record.outcomes),
            "answers": answer_counts(record.outcomes),
            "stored_without_ack": total["stored_without_ack"],
            "attributed": attributed,
            "attribution_drain_s": drain_s,
            "tenants": per_tenant,
        },
    )


def judged(
    name: str,
    topology: Topology,
    engine: Engine,
    load: Background,
    record: RunRecord,
    recovery_s: float | None,
    drain_timeout_s: float,
) -> ScenarioResult:
    """The scenario's verdict, then its negative control on the same tenants; a control that does not
    catch the deleted event fails the scenario (a verdict that cannot fail proves nothing)."""
    result = judge_webhooks(name, engine, load.plan, record, recovery_s, drain_timeout_s)
    control = negative_control(topology, engine, load.plan, record, result)
    result.details["negative_control"] = control
    if not control["caught"]:
        result.status = "failed"
    return result


DELETE_EVENT_SQL = "DELETE FROM attribution_events WHERE tenant_id = %s AND external_event_id = %s"


def negative_control(
    topology: Topology, engine: Engine, plan: StormPlan, record: RunRecord, result: ScenarioResult
) -> dict[str, Any]:
    """Delete one acknowledged event behind the harness's back (as the superuser) and judge again: the
    verdict must now fail with exactly one lost. The scenario's tenants are its own, so nothing else
    is touched. Returns what the control saw; ``caught`` false fails the scenario."""
    acked = acknowledged_by_tenant(plan, record)
    index = next((i for i, ids in acked.items() if ids), None)
    if index is None or topology.admin_url is None:
        return {"caught": False, "why": "nothing was acknowledged, so there is nothing to lose"}
    victim = sorted(acked[index])[0]
    admin = topology.superuser_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        deleted = conn.execute(DELETE_EVENT_SQL, (plan.tenants[index].tenant_id, victim)).rowcount
    control = judge_webhooks(result.name, engine, plan, record, result.recovery_s, 30)
    caught = deleted == 1 and control.status == "failed" and control.lost == 1
    return {"caught": caught, "deleted": deleted, "control_status": control.status, "control_lost": control.lost}


def kill_worker(topology: Topology, engine: Engine, rate: float, duration_s: float) -> ScenarioResult:
    load = start_load(topology, engine, rate, duration_s)
    time.sleep(duration_s / 4)
    topology.kill_service("worker")
    killed = time.monotonic()
    time.sleep(1.0)  # a supervisor notices and restarts it
    topology.start_service("worker")
    recovery = round(time.monotonic() - killed, 3) if wait_worker_healthy(topology).ok else None
    return judged("worker_kill_9", topology, engine, load, load.join(), recovery, 90)


def kill_api(topology: Topology, engine: Engine, rate: float, duration_s: float) -> ScenarioResult:
    load = start_load(topology, engine, rate, duration_s)
    time.sleep(duration_s / 4)
    topology.kill_service("api")
    killed = time.perf_counter()
    time.sleep(1.0)
    topology.start_service("api")
    record = load.join()
    recovery = first_ack_after(record, killed)
    if recovery is None:  # on a busy machine the api can take longer to start than the load lasts
        ready = poll_until(f"{topology.api_url}/health/ready", timeout_s=90, interval_s=0.2)
        recovery = round(time.perf_counter() - killed, 3) if ready.ok else None
    return judged("api_kill_9", topology, engine, load, record, recovery, 90)


def restart_postgres(topology: Topology, engine: Engine, rate: float, duration_s: float) -> ScenarioResult:
    load = start_load(topology, engine, rate, duration_s)
    time.sleep(duration_s / 4)
    topology.stop_postgres()
    time.sleep(2.0)
    topology.start_postgres()
    restarted = time.perf_counter()
    record = load.join()
    engine.dispose()  # our own pooled connections died with the server
    result = judged("postgres_restart", topology, engine, load, record, first_ack_after(record, restarted), 120)
    worker = wait_worker_healthy(topology)
    result.details["worker_healthy_after_s"] = round(worker.elapsed_s, 3) if worker.ok else None
    return result


# The mock's LLM fault in each phase, and the ledger outcomes (``llm_api_calls``: status, then the
# blocked_reason or failure_reason the boundary wrote) that show it really happened. A phase without
# them fails the scenario: a fault that was never injected would otherwise pass for one survived.
LLM_PHASES: dict[str, frozenset[str]] = {
    "error": frozenset({"failed:http_500", "blocked:breaker_open"}),  # 500s, until the breaker trips
    "slow": frozenset({"failed:timeout"}),  # the hang outlasts LLM_TIMEOUT_S
    "rate_limit": frozenset({"failed:rate_limited"}),
    "success": frozenset({"succeeded"}),  # recovery
}
LLM_FAULT = {"surface": "llm", "slow_ms": 5000, "retry_after_s": 1}


def injection_problem(request: dict[str, Any], response: httpx.Response) -> str | None:
    """Why the mock did not take this fault, judged by the state ``/control/faults`` answers with."""
    if response.status_code != 200:
        return f"/control/faults answered {response.status_code}: {response.text[:200]}"
    state = response.json()
    taken = {
        "mode": state.get("modes", {}).get(request["surface"]),
        "slow_ms": state.get("slow_ms"),
        "retry_after_s": state.get("retry_after_s"),
    }
    wanted = {key: request[key] for key in taken}
    return None if taken == wanted else f"/control/faults holds {taken}, not {wanted}"


def llm_provider_faults(
    topology: Topology, engine: Engine, rate: float, duration_s: float, *, inject: bool = True
) -> ScenarioResult:
    """Error, hang and rate-limit in turn, then recovery; one ledger row per accepted task, budgets intact.

    Each phase has a tenant of its own and is ledgered completely before the next fault is set, so
    a phase's rows are the outcomes under its fault; each must show that fault (LLM_PHASES).
    ``inject=False`` (the negative control, for tests) sets ``success`` where a fault would go.
    """
    provisioned = database.provision_tenants(engine, len(LLM_PHASES), f"faults-llm-{uuid.uuid4().hex[:6]}")
    tenants = dict(zip(LLM_PHASES, provisioned, strict=True))
    accepted = 0
    answers: dict[str, int] = {}
    phases: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    recovered_from = datetime.now(UTC)
    with httpx.Client(base_url=topology.mock_url, timeout=10) as mock:
        for mode, expected in LLM_PHASES.items():
            tenant = tenants[mode]
            fault = {"mode": mode if inject else "success", **LLM_FAULT}
            injection = injection_problem(fault, mock.post("/control/faults", json=fault))
            if mode == "success":
                recovered_from = datetime.now(UTC)
            shot = task_shot(tenant, f"{mode}-{uuid.uuid4().hex[:6]}")
            record = asyncio.run(fire(topology.api_url, shot, rate=rate, duration_s=duration_s / len(LLM_PHASES)))
            answers.update(answer_counts(record.outcomes, prefix=f"{mode}:"))
            phase_accepted = sum(1 for o in record.outcomes if o.status in (200, 202))
            accepted += phase_accepted
            rows = wait_ledgered(engine, tenant, phase_accepted, 120)
            missing = sorted(expected - set(rows))
            phases[mode] = {
                "accepted": phase_accepted,
                "injection": injection or "taken",
                "ledger": rows,
                "missing_outcomes": missing,
            }
            problems += [f"{mode}: {injection}"] if injection else []
            problems += [f"{mode}: the ledger has no {', '.join(missing)}"] if missing else []
    finished = sum(finished_calls(phase["ledger"]) for phase in phases.values())
    over_budget = 0
    for tenant in tenants.values():
        with tenant_transaction_sync(tenant.context, engine) as conn:
            over_budget += int(conn.execute(OVER_BUDGET_SQL).scalar_one())
    with tenant_transaction_sync(tenants["success"].context, engine) as conn:
        first_success = conn.execute(FIRST_SUCCESS_SQL, {"since": recovered_from}).scalar_one()
    recovery = round((first_success - recovered_from).total_seconds(), 3) if first_success else None
    ok = finished == accepted and over_budget == 0 and recovery is not None and not problems
    return ScenarioResult(
        "llm_provider_error_hang_rate_limit",
        acknowledged=accepted,
        persisted=finished,
        lost=max(0, accepted - finished),
        duplicated=max(0, finished - accepted),
        recovery_s=recovery,
        status="passed" if ok else "failed",
        details={"answers": answers, "phases": phases, "problems": problems, "budget_periods_over_limit": over_budget},
    )


SCENARIOS: dict[str, Callable[[Topology, Engine, float, float], ScenarioResult]] = {
    "worker_kill_9": kill_worker,
    "api_kill_9": kill_api,
    "postgres_restart": restart_postgres,
    "llm_provider_faults": llm_provider_faults,
}
