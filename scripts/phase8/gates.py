"""The one list of Phase 8 gates (DESIGN §9). The orchestrator, nox and the docs all read it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.phase8.evidence import run_step, scan_for_secrets
from scripts.topology import Topology


@dataclass
class GateContext:
    artifact_dir: Path
    mode: str  # ci_subset | default | full_physics
    topology: Topology
    ready_timeout_s: float = 60.0  # how long EG8.1 waits for api and worker health

    @property
    def logs_dir(self) -> Path:
        return self.artifact_dir / "logs"


@dataclass
class GateResult:
    status: str  # passed | failed | not_built
    evidence: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0


@dataclass(frozen=True)
class Gate:
    id: str
    title: str
    proves: str
    log: str  # where to look first when it fails
    run: Callable[[GateContext], GateResult] | None = None  # None: not built yet
    pending_issue: int | None = None
    pending_parts: tuple[str, ...] = ()  # parts of a built gate whose backend has not landed yet
    after_teardown: bool = False  # runs once the topology is down, so it sees every final log


def _script(ctx: GateContext, step: str, script: str, *args: str, timeout_s: float = 180) -> int:
    return run_step(step, [sys.executable, script, *args], ctx.logs_dir, ctx.topology.operator_env, timeout_s)


def eg8_1_topology(ctx: GateContext) -> GateResult:
    """Runtime identity is app_user without privileges; api and worker answer their health probes."""
    probe = ctx.artifact_dir / "runtime_db_probe.json"
    topo = ctx.topology
    steps = {  # DSNs travel by environment (operator_env), never on a command line
        "identity": _script(
            ctx, "eg8_1_identity", "scripts/identity/assert_runtime_identity.py", "--output", str(probe)
        ),
        "api_ready": _script(
            ctx,
            "eg8_1_wait_health",
            "scripts/wait_for_e2e_health.py",
            "--base-url",
            topo.api_url,
            "--timeout",
            str(ctx.ready_timeout_s),
        ),
        "worker_ready": _script(
            ctx,
            "eg8_1_wait_worker",
            "scripts/wait_for_e2e_worker.py",
            "--base-url",
            topo.api_url,
            "--timeout",
            str(ctx.ready_timeout_s),
        ),
    }
    failed = [name for name, code in steps.items() if code != 0]
    evidence = [
        "p8_topology_probe.json",
        "runtime_db_probe.json",
        "logs/eg8_1_identity.log",
        "logs/eg8_1_wait_health.log",
        "logs/eg8_1_wait_worker.log",
    ]
    metrics = {"up_s": topo.timings.get("up_s"), "exit_codes": steps}
    if failed:
        return GateResult("failed", evidence, metrics, error=f"{', '.join(failed)} failed; see logs/eg8_1_*.log")
    return GateResult("passed", evidence, metrics)


CLOSURE_TESTS = "backend/tests/integration/test_b07_p8_topology_closure_pack.py"
BAYESIAN_TESTS = "backend/tests/integration/test_b07_p5_bayesian_timeout_runtime.py"
SCHEMATHESIS_TESTS = "backend/tests/integration/test_contract_schemathesis.py"
P4_E2E_TESTS = "backend/tests/integration/test_b07_p4_operational_readiness_e2e.py"
ROUTER_TESTS = "backend/tests/test_b07_p6_complexity_router.py"
PROVIDER_CONTROL_TESTS = "backend/tests/test_b07_p3_provider_controls.py"
BOUNDARY_SCAN_TESTS = "backend/tests/test_b07_p0_provider_boundary_enforcement.py"


def _pytest_gate(ctx: GateContext, log: str, *selection: str) -> GateResult:
    """Run tests inside this run's topology (attach mode); output appended to logs/<log>.log."""
    env = {**ctx.topology.operator_env, "E2E_ATTACH_TOPOLOGY": ctx.topology.config.name}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra", *selection]
    code = run_step(log, argv, ctx.logs_dir, env, timeout_s=600)
    evidence = [f"logs/{log}.log"]
    if code != 0:
        return GateResult("failed", evidence, {"pytest_exit": code}, error=f"pytest exit {code}; see logs/{log}.log")
    return GateResult("passed", evidence, {"pytest_exit": code})


def eg8_2_closure(ctx: GateContext) -> GateResult:
    """Webhook -> persistence -> worker recompute -> results; reconciliation write -> API; LLM tasks."""
    closure = _pytest_gate(ctx, "pytest_p8_topology", CLOSURE_TESTS, "-k", "not contract")
    if closure.status != "passed":
        return closure
    return _pytest_gate(
        ctx,
        "pytest_p4_e2e",
        P4_E2E_TESTS,
        ROUTER_TESTS,
        BOUNDARY_SCAN_TESTS,
        "-k",
        "eg63 or test_1_2 or boundary or planted",
    )


def eg8_3_compute_safety(ctx: GateContext) -> GateResult:
    """LLM budget, breaker, timeout, router; Bayesian hard timeout with the last-touch fallback."""
    llm = _pytest_gate(
        ctx, "pytest_p4_e2e", P4_E2E_TESTS, PROVIDER_CONTROL_TESTS, ROUTER_TESTS, "-k", "not test_1_2 and not eg63"
    )
    if llm.status != "passed":
        return llm
    return _pytest_gate(ctx, "pytest_p5_bayesian_timeout", BAYESIAN_TESTS)


def eg8_6_fidelity(ctx: GateContext) -> GateResult:
    """Live responses against the committed contract, mutation controls, and Schemathesis."""
    return _pytest_gate(ctx, "pytest_p8_topology", CLOSURE_TESTS, SCHEMATHESIS_TESTS, "-k", "contract")


def eg8_7_evidence(ctx: GateContext) -> GateResult:
    """No log or evidence file holds a run secret or anything shaped like one."""
    findings = scan_for_secrets(ctx.artifact_dir, ctx.topology.secrets())
    metrics = {
        "files_scanned": sum(1 for p in ctx.artifact_dir.rglob("*") if p.is_file()),
        "secret_findings": [str(f) for f in findings],
    }
    if findings:
        return GateResult(
            "failed", ["logs/"], metrics, error=f"secret hygiene: {len(findings)} finding(s): {findings[0]}"
        )
    return GateResult("passed", ["logs/", "manifest.sha256"], metrics)


GATES: tuple[Gate, ...] = (
    Gate(
        "eg8_1_topology",
        "EG8.1 topology",
        "bring-up; runtime DB user is app_user, rolsuper=false, no BYPASSRLS; api ready; worker ready",
        "logs/eg8_1_identity.log",
        eg8_1_topology,
    ),
    Gate(
        "eg8_2_closure_pack",
        "EG8.2 closure",
        "webhook -> persistence -> scheduled recompute -> results; reconciliation -> API; LLM tasks",
        "logs/pytest_p8_topology.log",
        eg8_2_closure,
    ),
    Gate(
        "eg8_3_compute_safety",
        "EG8.3 compute safety",
        "budget, breaker, timeout, router controls; Bayesian hard timeout with fallback",
        "logs/pytest_p4_e2e.log",
        eg8_3_compute_safety,
    ),
    Gate(
        "eg8_4_ledger_audit",
        "EG8.4 ledger/audit",
        "every outcome ledgered, no raw prompt stored, cache faster than provider, SQL probes",
        "logs/collect_sql_probes.log",
        pending_issue=6,
    ),
    Gate(
        "eg8_5_composed_ingestion_perf",
        "EG8.5 composed perf",
        "ingestion under fire with LLM background load in the same window; perf_composed_llm_calls > 0",
        "logs/r3_ingestion_under_fire.log",
        pending_issue=7,
    ),
    Gate(
        "eg8_6_openapi_fidelity",
        "EG8.6 contract fidelity",
        "live responses validate against the committed contract; mutated responses fail",
        "logs/pytest_p8_topology.log",
        eg8_6_fidelity,
    ),
    Gate(
        "eg8_7_evidence_pack",
        "EG8.7 evidence",
        "gate summary, manifest, probes, logs; secret-hygiene scan of every log",
        "phase8_gate_summary.json",
        eg8_7_evidence,
        after_teardown=True,
    ),
)


def timed(gate: Gate, ctx: GateContext) -> GateResult:
    if gate.run is None:
        return GateResult("not_built", error=f"not built yet (issue {gate.pending_issue})")
    started = time.monotonic()
    try:
        result = gate.run(ctx)
    except Exception as exc:
        result = GateResult("failed", error=f"{type(exc).__name__}: {exc}")
    result.duration_s = round(time.monotonic() - started, 3)
    if gate.pending_parts:
        result.metrics["pending_parts"] = list(gate.pending_parts)
    return result
