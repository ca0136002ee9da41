"""The LLM fault scenario proves its faults happened: the mock must take each injection, and each
phase must leave its fault's outcomes in the ledger. Run with the injection disabled, it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.faults.run_faults import FAULT_ENV
from scripts.faults.scenarios import LLM_FAULT, LLM_PHASES, injection_problem, llm_provider_faults
from scripts.r3 import database
from scripts.topology import Topology

from .conftest import own_topology

# Enough tasks per phase for every model's breaker to reach its threshold and, after the
# cool-down, take a half-open trial inside the phase.
RATE = 8.0
DURATION_S = 20.0


def mock_state(mode: str, **changed: Any) -> dict[str, Any]:
    """What /control/faults answers once the LLM surface is in ``mode``."""
    return {
        "modes": {"payments": "success", "llm": mode},
        "remaining": {"payments": None, "llm": None},
        "requests": {"payments": 0, "llm": 0},
        "slow_ms": LLM_FAULT["slow_ms"],
        "retry_after_s": LLM_FAULT["retry_after_s"],
        **changed,
    }


def test_an_injection_counts_only_when_the_mock_holds_it() -> None:
    fault = {"mode": "error", **LLM_FAULT}
    assert injection_problem(fault, httpx.Response(200, json=mock_state("error"))) is None
    refused = injection_problem(fault, httpx.Response(422, json={"detail": "unknown mode"}))
    assert refused is not None and "answered 422" in refused
    for ignored in (mock_state("success"), mock_state("error", slow_ms=2000), mock_state("error", retry_after_s=30)):
        problem = injection_problem(fault, httpx.Response(200, json=ignored))
        assert problem is not None and "holds" in problem


@pytest.fixture(scope="module")
def fault_topology(test_artifacts: Path) -> Iterator[Topology]:
    """The fault run's timers (short breaker cool-down and provider timeout), in a topology of its own."""
    yield from own_topology(test_artifacts, "llm-faults", **FAULT_ENV)


@pytest.mark.integration
def test_the_llm_scenario_fails_when_no_fault_is_injected(fault_topology: Topology) -> None:
    assert fault_topology.dsns is not None
    engine = database.runtime_engine(fault_topology.dsns.runtime_sync)
    try:
        control = llm_provider_faults(fault_topology, engine, RATE, DURATION_S, inject=False)
        proof = llm_provider_faults(fault_topology, engine, RATE, DURATION_S)
    finally:
        engine.dispose()
    assert proof.status == "passed", proof.as_dict()
    assert all(phase["missing_outcomes"] == [] for phase in proof.details["phases"].values())

    assert control.status == "failed", control.as_dict()
    phases = control.details["phases"]
    # Every setting was taken and every task ledgered: only the missing fault outcomes fail it.
    assert {mode: phase["injection"] for mode, phase in phases.items()} == dict.fromkeys(LLM_PHASES, "taken")
    assert control.lost == 0 and control.duplicated == 0 and control.recovery_s is not None
    assert {mode: phase["missing_outcomes"] for mode, phase in phases.items()} == {
        "error": ["blocked:breaker_open", "failed:http_500"],
        "slow": ["failed:timeout"],
        "rate_limit": ["failed:rate_limited"],
        "success": [],
    }
