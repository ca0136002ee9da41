"""The soak's verdict: a flat noisy series passes, a growing one fails (the negative control), p99 is
held to a multiple of the warm-up's, errors fail the run, and the plot is well-formed SVG."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from scripts.harness import REPO_ROOT
from scripts.soak import plot
from scripts.soak.__main__ import DEFAULT_RPS, Timing, default_rps, memory_unjudged, series
from scripts.soak.verdict import NOISE_FLOOR, decide, judge_series, pruned_row_floors, slope, trend

TIMES = [float(t) for t in range(0, 600, 10)]


def noisy(level: float, spread: float, growth_per_s: float = 0.0, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [level + growth_per_s * t + rng.uniform(-spread, spread) for t in TIMES]


def test_slope_is_the_least_squares_fit() -> None:
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    assert slope([5], [9]) == 0.0
    assert slope([1, 1], [0, 9]) == 0.0


def test_a_bounded_noisy_table_passes() -> None:
    """A pruned table: ~2 MiB, swinging 20% either way as vacuum runs, no trend."""
    level = 2 * 2**20
    assert trend("bytes:outbox", "table_bytes", TIMES, noisy(level, 0.2 * level)).passed


def test_control_a_table_that_keeps_growing_fails() -> None:
    """The same table unpruned, growing by a few KiB a second (50 webhooks a second add more)."""
    level = 2 * 2**20
    judged = trend("bytes:outbox", "table_bytes", TIMES, noisy(level, 0.2 * level, growth_per_s=3 * 2**10))
    assert not judged.passed and judged.growth > judged.allowed


def test_control_a_slow_leak_in_a_large_process_fails() -> None:
    """200 MiB of memory growing by 10% over the window is more than the allowed share."""
    level = 200 * 2**20
    growth = 0.15 * level / (TIMES[-1] - TIMES[0])
    assert not trend("rss_anon:api", "bytes", TIMES, noisy(level, 2**20, growth)).passed


def test_near_zero_series_are_judged_against_their_noise_floor() -> None:
    """A backlog between 0 and 40 looks like +100% by proportion; its floor keeps it a pass, and a
    backlog that climbs past the floor still fails."""
    assert trend("outbox_backlog", "count", TIMES, noisy(20, 20)).passed
    climbing = [t / 2 for t in TIMES]  # +300 over the window
    assert 300 > NOISE_FLOOR["count"]
    assert not trend("outbox_backlog", "count", TIMES, climbing).passed


def test_only_points_after_the_warm_up_are_judged() -> None:
    """Growth during the warm-up (caches filling) then flat: a pass; the same judged from zero: a fail."""
    values = [min(t, 100.0) * 2**20 for t in TIMES]
    series = {"rss_anon:api": ("bytes", list(zip(TIMES, values, strict=True)))}
    assert judge_series(series, warmup_s=120)["rss_anon:api"].passed
    assert not judge_series(series, warmup_s=0)["rss_anon:api"].passed


def test_p99_and_errors_decide_too() -> None:
    flat = {"x": trend("x", "count", TIMES, noisy(5, 1))}
    assert decide(flat, 100.0, 149.0, 0).status == "passed"
    late = decide(flat, 100.0, 151.0, 0)
    assert late.status == "failed" and "p99" in late.failures[0]
    # at millisecond latencies a rise under the noise floor is not degradation; above it, it is
    assert decide(flat, 10.0, 34.0, 0).status == "passed"
    assert decide(flat, 10.0, 36.0, 0).status == "failed"
    assert decide(flat, 10.0, 10.0, 1).failures == ["1 errors"]


def test_short_runs_scale_their_warm_up_and_retention() -> None:
    full, short = Timing.for_run(30, 10, None), Timing.for_run(3, 10, None)
    assert full.warmup_s == 300 and full.judges_bytes
    assert short.warmup_s == 60 and short.retention_s == 15 and not short.judges_bytes
    assert short.env(housekeeping=False)["HOUSEKEEPING_ENABLED"] == "false"


def test_the_plot_is_svg(tmp_path: Path) -> None:
    path = tmp_path / "soak.svg"
    series = {"a": [(0.0, 1.0), (10.0, 2.0)], "b<&>": []}
    plot.write_svg(path, "soak & co", [("bytes", "bytes", series), ("p99", "ms", {"p99": [(5.0, 3.2)]})], 20, 5)
    root = ET.parse(path).getroot()  # noqa: S314 -- a file this test just wrote
    assert root.tag.endswith("svg")
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 2


def test_the_rate_is_half_the_sweeps_or_the_stated_default(tmp_path: Path) -> None:
    sweep = tmp_path / "ingestion_sweep.json"
    assert default_rps(sweep)[0] == DEFAULT_RPS
    sweep.write_text('{"max_sustainable_rps": 300}')
    assert default_rps(sweep)[0] == 150
    sweep.write_text('{"max_sustainable_rps": 0}')
    assert default_rps(sweep)[0] == DEFAULT_RPS


def test_the_published_sweep_gives_the_rate_the_soak_and_faults_ran_at() -> None:
    """docs/perf/2026-12-06-soak-30.md cites this file as the source of its 150 rps."""
    assert default_rps(REPO_ROOT / "docs" / "perf" / "2026-12-06-full-physics-sweep.json")[0] == 150


def memory_rows(processes: dict[str, list[int]], times: list[float]) -> list[dict[str, Any]]:
    """Samples of one service ('postgres'): per pid, its anonymous RSS at each time (0: not alive)."""
    rows = []
    for n, t in enumerate(times):
        by_pid = {pid: values[n] for pid, values in processes.items() if values[n]}
        memory = {"postgres": {"anon": sum(by_pid.values()), "by_pid": by_pid}}
        database = {"sizes": {}, "rows": {}, "outbox_backlog": 0, "broker_depth": 0, "attribution_lag_s": 0.0}
        rows.append({"t_s": t, "memory": memory, **database})
    return rows


MIB = 2**20
SAMPLE_TIMES = [60.0 + 10 * n for n in range(13)]  # the judged window of the 3-minute soak: 60 s warm-up


def judged_memory(processes: dict[str, list[int]]) -> dict[str, Any]:
    rows = memory_rows(processes, SAMPLE_TIMES)
    return judge_series(series(rows, warmup_s=60.0), warmup_s=60.0)


def test_a_process_that_starts_late_in_the_window_is_not_a_leak() -> None:
    """Eight steady backends, then an autovacuum worker of 28 MiB for the last two samples: the
    summed memory would read +28 MiB; the processes that lived through the window did not grow."""
    steady = {str(pid): [8 * MIB] * 13 for pid in range(100, 108)}
    late = {"200": [0] * 11 + [28 * MIB] * 2}
    trends = judged_memory({**steady, **late})
    assert trends["rss_anon:postgres"].passed
    assert trends["processes:postgres"].passed


def test_control_a_process_that_lives_through_the_window_and_grows_fails() -> None:
    steady = {str(pid): [8 * MIB] * 13 for pid in range(100, 107)}
    leaking = {"107": [8 * MIB + n * 3 * MIB for n in range(13)]}  # +36 MiB over the window
    assert not judged_memory({**steady, **leaking})["rss_anon:postgres"].passed


def test_control_processes_that_keep_appearing_fail_on_their_count() -> None:
    """A leak of processes (a pool that never closes what it opens): each new one is small and late,
    so the memory series excludes it, but the count climbs past its floor."""
    steady = {str(pid): [8 * MIB] * 13 for pid in range(100, 104)}
    appearing = {str(300 + n): [0] * n + [2 * MIB] * (13 - n) for n in range(1, 13)}
    trends = judged_memory({**steady, **appearing})
    assert trends["rss_anon:postgres"].passed
    assert not trends["processes:postgres"].passed


def test_a_service_whose_processes_were_all_replaced_is_not_judged_a_pass() -> None:
    """Every process restarted mid-window: none lived through it, so the memory series reads zero
    and flat. That must fail the soak as unjudged, not pass it."""
    first = {str(pid): [8 * MIB] * 6 + [0] * 7 for pid in range(100, 104)}
    second = {str(pid): [0] * 6 + [8 * MIB + n * 4 * MIB for n in range(7)] for pid in range(200, 204)}
    rows = memory_rows({**first, **second}, SAMPLE_TIMES)
    assert judge_series(series(rows, warmup_s=60.0), warmup_s=60.0)["rss_anon:postgres"].passed  # why it is needed
    assert memory_unjudged(rows, warmup_s=60.0) == {
        "postgres": "0 of the 4 processes at the window's start lived through it"
    }


def test_control_late_or_short_lived_processes_leave_memory_judged() -> None:
    steady = {str(pid): [8 * MIB] * 13 for pid in range(100, 104)}
    short = {"200": [0] * 3 + [4 * MIB] * 4 + [0] * 6, "201": [4 * MIB] * 5 + [0] * 8}
    assert memory_unjudged(memory_rows({**steady, **short}, SAMPLE_TIMES), warmup_s=60.0) == {}


def outbox_rows(level_at: Any) -> dict[str, tuple[str, list[tuple[float, float]]]]:
    return {"rows:outbox": ("rows", [(t, level_at(t)) for t in SAMPLE_TIMES])}


def test_a_pruned_tables_level_a_few_seconds_of_intake_higher_is_not_growth() -> None:
    """At 150 rps with a 5 s housekeeping interval (the 3-minute soak): the outbox held 1,850 rows,
    then 2,500 for the second half of the window (seen in a run): +833 by the fitted trend, over the
    constant floor of 500 and within the run's own (150 x (5 + 2) = 1,050)."""
    floors = pruned_row_floors(["outbox"], rps=150.0, housekeeping_interval_s=5.0)
    step = outbox_rows(lambda t: 1850.0 if t < 120 else 2500.0)
    assert not judge_series(step, warmup_s=60.0)["rows:outbox"].passed  # the constant floor alone
    assert judge_series(step, warmup_s=60.0, floors=floors)["rows:outbox"].passed


def test_control_a_table_housekeeping_no_longer_prunes_still_fails_with_the_runs_floor() -> None:
    """Housekeeping off at 150 rps: the outbox keeps every row, +150 a second over the window."""
    floors = pruned_row_floors(["outbox"], rps=150.0, housekeeping_interval_s=5.0)
    unpruned = outbox_rows(lambda t: 1850.0 + 150.0 * (t - 60.0))
    assert not judge_series(unpruned, warmup_s=60.0, floors=floors)["rows:outbox"].passed
