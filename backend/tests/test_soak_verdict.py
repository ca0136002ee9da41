"""The soak's verdict: a flat noisy series passes, a growing one fails (the negative control), p99 is
held to a multiple of the warm-up's, errors fail the run, and the plot is well-formed SVG."""

from __future__ import annotations

import json
import os
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from scripts.soak import plot
from scripts.soak.__main__ import DEFAULT_RPS, PUBLISHED_DIR, Timing, default_rps
from scripts.soak.verdict import NOISE_FLOOR, decide, judge_series, slope, trend

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


def published_sweep(directory: Path, name: str, rps: float, finished_at: str, **fields: Any) -> None:
    sweep = {
        "max_sustainable_rps": rps,
        "sweep_window": {"finished_at": finished_at},
        "invalid_because": [],
        "local_changes": False,
        "cpu_count": os.cpu_count(),
        "commit": "a028ddb",
        **fields,
    }
    (directory / name).write_text(json.dumps(sweep))


def test_the_rate_is_half_the_sweeps_or_the_stated_default(tmp_path: Path) -> None:
    sweep, published = tmp_path / "ingestion_sweep.json", tmp_path / "perf"
    published.mkdir()
    assert default_rps(sweep, published)[0] == DEFAULT_RPS
    sweep.write_text('{"max_sustainable_rps": 300}')
    assert default_rps(sweep, published)[0] == 150
    sweep.write_text('{"max_sustainable_rps": 0}')
    assert default_rps(sweep, published)[0] == DEFAULT_RPS


def test_a_fresh_clone_takes_the_newest_published_sweep_that_applies_here(tmp_path: Path) -> None:
    """No sweep of its own: half the newest applicable docs/perf full-physics sweep, by when it finished."""
    published = tmp_path / "perf"
    published.mkdir()
    missing = tmp_path / "none.json"
    published_sweep(published, "2026-12-01-full-physics-sweep.json", 1000, "2026-12-01T10:00:00+00:00")
    published_sweep(published, "2026-12-06-b-full-physics-sweep.json", 300, "2026-12-06T17:00:00+00:00")
    published_sweep(published, "2026-12-06-a-full-physics-sweep.json", 260, "2026-12-06T09:00:00+00:00")
    (published / "2026-12-07-soak-30-on.json").write_text('{"max_sustainable_rps": 9000}')  # no sweep
    rate, source = default_rps(missing, published)
    assert rate == 150 and "2026-12-06-b-full-physics-sweep.json" in source and "a028ddb" in source


@pytest.mark.parametrize(
    "unfit",
    [{"cpu_count": (os.cpu_count() or 1) + 2}, {"local_changes": True}, {"invalid_because": ["generator behind"]}],
)
def test_a_published_sweep_from_elsewhere_is_not_taken(tmp_path: Path, unfit: dict[str, Any]) -> None:
    """Another machine class, uncommitted code or an invalid measurement: the older applicable sweep
    is taken instead; with none left, the stated default."""
    published = tmp_path / "perf"
    published.mkdir()
    published_sweep(published, "2026-12-06-full-physics-sweep.json", 300, "2026-12-06T17:00:00+00:00", **unfit)
    assert default_rps(tmp_path / "none.json", published)[0] == DEFAULT_RPS
    published_sweep(published, "2026-12-01-full-physics-sweep.json", 200, "2026-12-01T10:00:00+00:00")
    assert default_rps(tmp_path / "none.json", published)[0] == 100


def test_the_checkouts_own_sweep_wins_even_when_it_held_nothing(tmp_path: Path) -> None:
    published = tmp_path / "perf"
    published.mkdir()
    published_sweep(published, "2026-12-06-full-physics-sweep.json", 300, "2026-12-06T17:00:00+00:00")
    own = tmp_path / "ingestion_sweep.json"
    own.write_text('{"max_sustainable_rps": 240}')
    assert default_rps(own, published)[0] == 120
    own.write_text('{"max_sustainable_rps": 0}')  # this machine just measured that it holds nothing
    assert default_rps(own, published)[0] == DEFAULT_RPS


def test_the_repository_publishes_a_sweep_this_machine_class_uses(tmp_path: Path) -> None:
    """What CI's fault scenarios and soak run at on a fresh clone of this 2-core class."""
    if os.cpu_count() != 2:
        pytest.skip("the published sweeps were measured on 2 cores")
    assert default_rps(tmp_path / "none.json", PUBLISHED_DIR)[0] > DEFAULT_RPS
