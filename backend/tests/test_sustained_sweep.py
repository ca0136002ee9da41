"""The sustained sweep's verdicts and the k6 cross-check's, each with the control that must turn it red.

No topology here: the rules are pure functions of a step's figures. The live run of the same
machinery (observer, peer, profiler) is in integration/test_sustained_sweep_live.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import psutil
import pytest

from scripts.phase8.gates import CROSSCHECK_FLOOR_RPS, headline_rate
from scripts.r3.ingestion_under_fire import (
    PROFILES,
    STEP_KEYS,
    floor_met,
    max_held,
    sustained_problems,
    sweep_summary,
)
from scripts.r3.k6_crosscheck import verdict
from scripts.r3.lag import StepLags, lag_stats, nearest_rank
from scripts.r3.profiling import ProcessProfiler, Scope, role_of

LAG_BOUND_MS = 5000.0


def step(rate: float, lag_p99_ms: float | None = 800.0, pending: int = 10, status: str = "passed") -> dict[str, Any]:
    return {
        "target_rps": rate,
        "duration_s": 60.0,
        "attribution_lag_p50_ms": 300.0,
        "attribution_lag_p99_ms": lag_p99_ms,
        "outbox_pending_at_end": pending,
        "outbox_pending_limit": rate,  # one second of intake
        "status": status,
    }


def test_the_full_physics_sweep_is_sustained_and_the_burst_is_named_apart() -> None:
    sweep, burst = PROFILES["sweep"], PROFILES["burst"]
    assert sweep.sustained and sweep.duration_s >= 60 and sweep.lag_p99_ms == LAG_BOUND_MS and sweep.p99_ms == 250
    assert not burst.sustained and burst.duration_s == 15
    assert PROFILES["sweep_short"].sustained and PROFILES["sweep_short"].duration_s < 60  # tests only


def test_a_step_that_keeps_up_holds() -> None:
    assert sustained_problems(step(400), LAG_BOUND_MS) == []


def test_a_step_whose_lag_grows_does_not_hold() -> None:
    problems = sustained_problems(step(400, lag_p99_ms=7200.0), LAG_BOUND_MS)
    assert problems and "attribution lag p99 7200 ms" in problems[0]


def test_a_step_without_a_lag_measurement_does_not_hold() -> None:
    assert sustained_problems(step(400, lag_p99_ms=None), LAG_BOUND_MS) == ["no attribution lag measured"]


def test_a_step_that_ends_with_a_growing_backlog_does_not_hold() -> None:
    problems = sustained_problems(step(400, pending=401), LAG_BOUND_MS)
    assert len(problems) == 1 and "the backlog grows" in problems[0]


def test_events_not_yet_visible_count_at_their_age() -> None:
    """A backlog that never drains must raise p99 even though no completed event was slow."""
    quick = [0.2] * 980
    assert lag_stats(StepLags(quick + [0.3] * 20))["attribution_lag_p99_ms"] == 300.0
    stuck = lag_stats(StepLags(quick, pending_s=[30.0] * 20))  # 2% never became visible
    assert stuck["attribution_lag_p99_ms"] == 30_000.0 and stuck["attribution_lag_not_visible"] == 20
    assert lag_stats(StepLags())["attribution_lag_p99_ms"] is None
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 50) == 2.0 and nearest_rank([1.0, 2.0, 3.0, 4.0], 99) == 4.0


def test_max_sustainable_is_the_unbroken_run_from_the_bottom() -> None:
    steps = [step(100), step(200), step(300, status="failed"), step(400)]
    assert max_held(steps) == 200  # a lucky step above a failed one does not count
    assert max_held([step(100, status="failed")]) == 0


def test_a_sweep_that_held_nothing_never_passes() -> None:
    assert floor_met(200.0, 0.0) and floor_met(800.0, 800.0)
    assert not floor_met(0.0, 0.0)  # found by the frozen-worker control: a floor of 0 passed an empty sweep
    assert not floor_met(700.0, 800.0)


def test_the_sweep_reports_the_per_step_keys_and_the_peer_ratio() -> None:
    ours = [step(100), step(200), step(300, status="failed")]
    peer = [step(200), step(300), step(400, status="failed")]
    summary = sweep_summary(ours, peer, (100.0, 200.0, 300.0, 400.0))
    assert summary["max_sustainable_rps"] == 200 and summary["peer_http_insert_max_rps"] == 300
    assert summary["ratio_to_http_peer"] == pytest.approx(0.667)
    assert all(set(STEP_KEYS) <= set(s) for s in summary["sustained_steps"])
    assert not summary["ladder_top_held"] and not summary["peer_ladder_top_held"]
    assert sweep_summary(ours, [step(200, status="failed")], (100.0, 200.0))["ratio_to_http_peer"] is None


def test_the_crosscheck_runs_at_the_headline_rate_never_below_the_floor() -> None:
    assert headline_rate({}) == CROSSCHECK_FLOOR_RPS == 800
    assert headline_rate({"max_sustainable_rps": 300.0}) == 800
    assert headline_rate({"max_sustainable_rps": 1200.0}) == 1200


def tool(**overrides: Any) -> dict[str, Any]:
    return {"achieved_rps": 800.0, "p50_ms": 2.3, "p99_ms": 3.1, "failed_requests": 0, **overrides}


def test_the_crosscheck_passes_when_both_tools_agree() -> None:
    assert verdict(tool(late_starts=0, requests=24_000), tool(dropped_iterations=0), 1.0, 0.1)["status"] == "passed"


def test_a_k6_run_with_dropped_iterations_fails() -> None:
    found = verdict(tool(late_starts=0, requests=24_000), tool(dropped_iterations=1), 1.0, 0.1)
    assert found["status"] == "failed" and "k6 dropped 1 iterations" in found["failures"][0]


def test_failed_requests_in_either_tool_fail_the_crosscheck() -> None:
    ours = tool(late_starts=0, requests=24_000, failed_requests=2)
    assert verdict(ours, tool(dropped_iterations=0), 1.0, 0.1)["status"] == "failed"


def test_a_disagreement_past_both_tolerances_fails() -> None:
    ours = tool(late_starts=0, requests=24_000, p99_ms=4.6)  # 1.5 ms off: more than 1 ms + 10% of 3.1 ms
    found = verdict(ours, tool(dropped_iterations=0), 1.0, 0.1)
    assert found["status"] == "failed" and found["disagreements"] == ["p99_ms"]


def test_our_late_starts_make_the_crosscheck_invalid_not_passed() -> None:
    found = verdict(tool(late_starts=500, requests=24_000), tool(dropped_iterations=0), 1.0, 0.1)
    assert found["status"] == "invalid_measurement"


def test_the_profiler_names_this_runs_processes_and_neighbours_apart() -> None:
    """A neighbour's api (another run's topology on the same machine) must never count as ours."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "app.api_server"])
    try:
        proc = psutil.Process(sleeper.pid)
        # Until the child has exec'd, its command line is still its parent's (or unreadable): wait for it.
        deadline = time.monotonic() + 10
        while "app.api_server" not in " ".join(proc.cmdline()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert role_of(proc, Scope({}, root=os.getpid())) == "api"
        assert role_of(proc, Scope({}, root=-1)) == "other:api"
        assert role_of(proc, Scope({sleeper.pid: "generator"}, root=-1)) == "generator"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_profiler_samples_cpu_per_role_without_a_database() -> None:
    profiler = ProcessProfiler(dsn=None, api_url=None, interval_s=0.2)
    with profiler:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # the generator's role must show some CPU
            sum(range(10_000))
    report = profiler.report
    assert report["samples"] >= 3 and report["cores_mean"]["generator"] > 0
    assert "profiler" in report["cores_mean"] and "api_probe_ms" not in report
