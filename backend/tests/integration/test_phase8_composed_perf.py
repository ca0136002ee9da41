"""EG8.5 on the live topology: with LLM background load it passes and the ledger shows provider-backed
successes inside the ingestion window. Two negative controls fail it: no background load at all, and
a load whose every call is blocked (the kill switch on for the whole window), which still writes
ledger rows but never reaches the provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts.harness import REPO_ROOT
from scripts.phase8 import gates
from scripts.phase8.gates import CROSSCHECK_FLOOR_RPS, GateContext, eg8_5_composed_perf
from scripts.topology import Topology

pytestmark = pytest.mark.slow


def gate_dir(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    (root / "logs").mkdir(parents=True)
    return root


@pytest.mark.timing  # the gate judges latencies and a k6 cross-check: never beside the parallel suite
def test_eg8_5_needs_llm_calls_inside_the_ingestion_window(
    topology: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gate as the closure pack runs it (cross-check on) must call its k6 step at the headline rate;
    # the step itself is not run here (a minute per run): test_load_generator.py runs the same
    # cross-check, and test_eg8_5_wiring.py what the step starts.
    asked: list[float] = []

    def crosscheck_step(ctx: GateContext, retried: dict[str, float], rate: float) -> int | None:
        asked.append(rate)
        return 0 if ctx.k6_crosscheck else None

    monkeypatch.setattr(gates, "k6_crosscheck_step", crosscheck_step)
    composed = eg8_5_composed_perf(GateContext(gate_dir(tmp_path, "with"), "ci_subset", topology))
    assert composed.status == "passed", composed.error
    assert composed.metrics["perf_composed_llm_calls"] > 0
    assert composed.metrics["window_overlap_s"] > 0
    assert composed.metrics["errors"] == 0 and composed.metrics["achieved_rps"] >= 4.9
    assert composed.metrics["baseline_insert_tps"] > 0
    assert asked == [CROSSCHECK_FLOOR_RPS] and composed.metrics["exit_codes"]["k6_crosscheck"] == 0

    alone_dir = gate_dir(tmp_path, "without")
    alone = eg8_5_composed_perf(
        GateContext(alone_dir, "ci_subset", topology, llm_background_load=False, k6_crosscheck=False)
    )
    assert alone.status == "failed"
    assert alone.metrics["perf_composed_llm_calls"] == 0
    # the coupling is the only thing wrong (a skipped cross-check adds no problem of its own)
    assert alone.error is not None and alone.error.startswith("perf_composed_llm_calls = 0") and "; " not in alone.error
    assert alone.metrics["exit_codes"]["ingestion"] == 0  # ingestion itself was fine: only the coupling is missing
    probes = json.loads((alone_dir / "sql" / "phase8_sql_probe_summary.json").read_text())
    assert probes["failed_checks"] == {"perf_composed_llm_calls": 0}


@contextmanager
def kill_switch_on(topology: Topology) -> Iterator[None]:
    """The operator's own command, so the control follows wherever the switch lives."""

    def switch(*args: str) -> None:
        subprocess.run(
            [sys.executable, "scripts/ops/llm_kill_switch.py", *args],
            cwd=REPO_ROOT,
            env={**topology.operator_env},
            capture_output=True,
            check=True,
            timeout=60,
        )

    switch("on", "--reason", "EG8.5 negative control")
    try:
        yield
    finally:
        switch("off")


@pytest.mark.timing
def test_eg8_5_fails_when_no_call_reaches_the_provider(topology: Topology, tmp_path: Path) -> None:
    with kill_switch_on(topology):
        blocked = eg8_5_composed_perf(
            GateContext(gate_dir(tmp_path, "blocked"), "ci_subset", topology, k6_crosscheck=False)
        )
    assert blocked.status == "failed"
    assert blocked.metrics["perf_composed_llm_calls"] == 0
    outcomes = blocked.metrics["perf_composed_llm_outcomes"]
    assert outcomes and all("provider_kill_switch" in outcome for outcome in outcomes), outcomes
    assert blocked.error is not None and blocked.error.startswith("perf_composed_llm_calls = 0")
    assert "; " not in blocked.error  # nothing else failed: the control fails for the coupling alone
    assert blocked.metrics["exit_codes"]["llm_background_load"] == 0  # the load ran; its calls were all blocked
