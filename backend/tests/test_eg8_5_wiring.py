"""EG8.5's k6 cross-check is wired in where the closure pack runs the gate: its context always asks
for the cross-check, and the step then runs scripts/r3/k6_crosscheck.py at the rate it is given for
the required duration. The gate's own tests do not run the cross-check itself (it costs a minute and
test_load_generator.py runs it on its own; the positive one checks the gate calls the step at the
headline rate), so these keep a skipped cross-check from passing unseen.
Controls: a context without it runs nothing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from scripts.phase8 import gates
from scripts.phase8.gates import CROSSCHECK_DURATION_S, GateContext, k6_crosscheck_step
from scripts.phase8.run_phase8_closure_pack import closure_context
from scripts.topology import Topology, TopologyConfig


def context(tmp_path: Path, **options: Any) -> GateContext:
    return GateContext(tmp_path, "ci_subset", Topology(TopologyConfig(artifact_dir=tmp_path)), **options)


@pytest.mark.parametrize("background", [True, False])
def test_the_closure_pack_always_asks_for_the_crosscheck(tmp_path: Path, background: bool) -> None:
    args = argparse.Namespace(no_llm_background_load=not background, sweep_floor=800.0)
    ctx = closure_context(args, tmp_path, "ci_subset", Topology(TopologyConfig(artifact_dir=tmp_path)))
    assert ctx.k6_crosscheck is True and ctx.llm_background_load is background


def run_step(monkeypatch: pytest.MonkeyPatch, ctx: GateContext) -> tuple[int | None, list[tuple[str, ...]]]:
    ran: list[tuple[str, ...]] = []

    def measurement(ctx: GateContext, retried: dict[str, float], step: str, script: str, *args: str) -> int:
        ran.append((step, script, *args))
        return 0

    monkeypatch.setattr(gates, "_measurement", measurement)
    return k6_crosscheck_step(ctx, {}, 812.5), ran


def test_the_step_runs_the_crosscheck_at_the_rate_for_the_required_duration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, ran = run_step(monkeypatch, context(tmp_path))
    assert code == 0 and len(ran) == 1
    step, script, *args = ran[0]
    assert (step, script) == ("r3_k6_crosscheck", "scripts/r3/k6_crosscheck.py")
    assert args[:4] == ["--rate", "812.5", "--duration", f"{CROSSCHECK_DURATION_S:g}"] and CROSSCHECK_DURATION_S >= 30


def test_control_a_context_without_it_runs_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert run_step(monkeypatch, context(tmp_path, k6_crosscheck=False)) == (None, [])
