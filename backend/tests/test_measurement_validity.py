"""A timing comparison whose own harness fell behind is an invalid measurement (exit 3), not a
disagreement; the gate runs it once more at a quieter moment, and only a valid answer decides.
Lost or wrong data is never excused as an invalid measurement.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from scripts.harness import ExitCode
from scripts.phase8 import gates
from scripts.phase8.gates import GateContext
from scripts.r3.ingestion_under_fire import PROFILES, null_benchmark_problems
from scripts.r3.k6_crosscheck import harness_problems


def ours(late_starts: int, requests: int = 6000) -> dict[str, Any]:
    return {"late_starts": late_starts, "requests": requests}


def test_crosscheck_is_invalid_when_our_generator_fell_behind() -> None:
    assert harness_problems(ours(0)) == []
    assert harness_problems(ours(5)) == []  # scheduling noise, not a trend
    assert "our generator fell behind" in harness_problems(ours(200))[0]


def null_summary(p99_ms: float, late_starts: int = 0) -> dict[str, Any]:
    return {"latency_ms": {"corrected": {"p99": p99_ms}}, "late_starts": late_starts, "requests": 100}


def test_a_slow_null_benchmark_voids_the_run() -> None:
    sweep = PROFILES["sweep"]  # p99 bound 250 ms: the harness may use 25 ms of it
    assert null_benchmark_problems(null_summary(3.0), sweep) == []
    assert "null benchmark p99 40.0 ms" in null_benchmark_problems(null_summary(40.0), sweep)[0]
    assert "fell behind" in null_benchmark_problems(null_summary(3.0, late_starts=50), sweep)[0]


def step_script(tmp_path: Path, codes: list[int], writes_from_run: int | None = None) -> Path:
    """A step that exits with ``codes`` in turn, one per run (its state in a file beside, reset
    here); from run ``writes_from_run`` on it writes ``run <n>`` to its ``--output``."""
    script = tmp_path / "step.py"
    state = tmp_path / "runs"
    state.unlink(missing_ok=True)
    writes = (
        f"if n >= {writes_from_run}: pathlib.Path(sys.argv[sys.argv.index('--output') + 1]).write_text(f'run {{n}}')\n"
        if writes_from_run is not None
        else ""
    )
    script.write_text(
        "import pathlib, sys\n"
        f"state = pathlib.Path({str(state)!r})\n"
        "n = int(state.read_text()) if state.exists() else 0\n"
        "state.write_text(str(n + 1))\n"
        f"{writes}"
        f"sys.exit({codes!r}[n])\n"
    )
    return script


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GateContext:
    monkeypatch.setattr(gates, "wait_for_quiet", lambda: 12.0)
    (tmp_path / "logs").mkdir()
    topology = SimpleNamespace(operator_env={})
    return GateContext(tmp_path, "ci_subset", cast(Any, topology))


@pytest.mark.parametrize(
    ("codes", "final", "retried"),
    [
        ([ExitCode.INVALID_MEASUREMENT, ExitCode.PASS], ExitCode.PASS, True),
        ([ExitCode.INVALID_MEASUREMENT, ExitCode.GATE_FAILED], ExitCode.GATE_FAILED, True),
        ([ExitCode.INVALID_MEASUREMENT, ExitCode.INVALID_MEASUREMENT], ExitCode.INVALID_MEASUREMENT, True),
        ([ExitCode.GATE_FAILED], ExitCode.GATE_FAILED, False),  # a valid disagreement is never retried
        ([ExitCode.PASS], ExitCode.PASS, False),
    ],
)
def test_an_invalid_measurement_is_retried_once(
    ctx: GateContext, tmp_path: Path, codes: list[int], final: int, retried: bool
) -> None:
    record: dict[str, float] = {}
    code = gates._measurement(ctx, record, "step", str(step_script(tmp_path, [int(c) for c in codes])))
    assert code == final
    assert (record == {"step": 12.0}) is retried
    assert ("invalid measurement; once more" in (tmp_path / "logs" / "step.log").read_text()) is retried


def test_a_retried_measurement_keeps_its_first_answer(ctx: GateContext, tmp_path: Path) -> None:
    """The second run writes the same --output; the first, invalid answer must survive beside it.
    An earlier run's file is never passed off as this run's first try. Control: a measurement that
    is not retried leaves no first-try file."""
    retried = [int(ExitCode.INVALID_MEASUREMENT), int(ExitCode.PASS)]
    output = tmp_path / "result.json"
    script = str(step_script(tmp_path, retried, writes_from_run=0))
    assert gates._measurement(ctx, {}, "step", script, "--output", str(output)) == ExitCode.PASS
    assert output.read_text() == "run 1"
    assert gates.first_try_path(output).read_text() == "run 0"
    assert gates.first_try_path(output).name == "result.invalid-first-try.json"

    stale = tmp_path / "stale.json"  # from an earlier run; this run's first try writes nothing
    stale.write_text("an earlier run")
    gates.first_try_path(stale).write_text("an earlier first try")
    script = str(step_script(tmp_path, retried, writes_from_run=1))
    assert gates._measurement(ctx, {}, "step", script, "--output", str(stale)) == ExitCode.PASS
    assert not gates.first_try_path(stale).exists()
    assert stale.read_text() == "run 1"

    once = tmp_path / "other.json"
    script = str(step_script(tmp_path, [int(ExitCode.PASS)], writes_from_run=0))
    assert gates._measurement(ctx, {}, "step", script, "--output", str(once)) == ExitCode.PASS
    assert once.read_text() == "run 0"
    assert not gates.first_try_path(once).exists()
