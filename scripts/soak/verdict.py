"""The soak's verdict, as pure functions of the samples.

A metric passes when its least-squares trend over the judged window (everything after the warm-up)
adds no more than ``SLOPE_FRACTION`` of its mean level over that window, or no more than its unit's
noise floor, whichever is larger: ``slope * window_s <= max(SLOPE_FRACTION * |mean|, floor)``. The
floors keep near-zero series (a backlog hovering between 0 and 3) from failing on noise; they are
far below what an unpruned table adds in minutes. Intake p99 after the warm-up fails the run only
when it exceeds both ``P99_RATIO`` times the warm-up's and the warm-up's plus ``P99_NOISE_FLOOR_MS``;
and the run must have no errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SLOPE_FRACTION = 0.10
P99_RATIO = 1.5
# A rise smaller than this is noise at millisecond latencies (a 9 -> 14 ms p99 is not degradation against
# the 250 ms bound), as the trend floors below are for the other series.
P99_NOISE_FLOOR_MS = 25.0
# What each unit may drift over the judged window whatever its level. A process's memory moves by a
# few MiB as allocators and caches settle; a pruned table's files grow in steps until vacuum first
# frees space for reuse.
# A service's process count moves by a few as PostgreSQL starts autovacuum workers and pools open
# and close connections; a leak of processes adds more than that over minutes.
NOISE_FLOOR = {
    "bytes": 4 * 2**20,
    "table_bytes": 2**20,
    "rows": 500.0,
    "count": 100.0,
    "seconds": 2.0,
    "processes": 4.0,
}


@dataclass(frozen=True)
class Trend:
    metric: str
    unit: str
    samples: int
    mean: float
    slope_per_s: float
    growth: float  # slope * window: what the trend adds over the judged window
    allowed: float
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "samples": self.samples,
            "mean": round(self.mean, 3),
            "slope_per_s": round(self.slope_per_s, 6),
            "growth_over_window": round(self.growth, 3),
            "allowed_growth": round(self.allowed, 3),
            "status": "passed" if self.passed else "failed",
        }


def slope(times: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of values against times (0 for fewer than two distinct times)."""
    n = len(times)
    if n < 2:
        return 0.0
    mean_t, mean_v = sum(times) / n, sum(values) / n
    var = sum((t - mean_t) ** 2 for t in times)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / var


def trend(
    metric: str,
    unit: str,
    times: Sequence[float],
    values: Sequence[float],
    fraction: float = SLOPE_FRACTION,
    floor: float | None = None,
) -> Trend:
    """Judge one series (already restricted to the judged window); ``floor`` replaces its unit's
    noise floor where the run knows better (see ``pruned_row_floors``)."""
    fitted = slope(times, values)
    window = (max(times) - min(times)) if times else 0.0
    mean = sum(values) / len(values) if values else 0.0
    growth = fitted * window
    allowed = max(fraction * abs(mean), NOISE_FLOOR[unit] if floor is None else floor)
    return Trend(metric, unit, len(values), mean, fitted, growth, allowed, growth <= allowed)


def pruned_row_floors(tables: Sequence[str], rps: float, housekeeping_interval_s: float) -> dict[str, float]:
    """How far a pruned table's row count may wander without growing: at a steady state it holds
    the rows of the retention window, plus what housekeeping has not reached yet (up to one interval
    of intake) and what the worker has not finished (the attribution lag, whose own drift is judged
    against its floor). A level a few seconds of intake higher than before is that, not growth; a
    table housekeeping no longer prunes adds the whole intake of the window."""
    floor = max(NOISE_FLOOR["rows"], rps * (housekeeping_interval_s + NOISE_FLOOR["seconds"]))
    return {f"rows:{table}": floor for table in tables}


def judge_series(
    series: dict[str, tuple[str, list[tuple[float, float]]]],
    warmup_s: float,
    fraction: float = SLOPE_FRACTION,
    floors: dict[str, float] | None = None,
) -> dict[str, Trend]:
    """Every series ({name: (unit, [(t_s, value), ...])}) judged on its points after ``warmup_s``."""
    judged = {}
    for name, (unit, points) in series.items():
        after = [(t, v) for t, v in points if t >= warmup_s]
        floor = (floors or {}).get(name)
        judged[name] = trend(name, unit, [t for t, _ in after], [v for _, v in after], fraction, floor)
    return judged


@dataclass(frozen=True)
class Verdict:
    status: str  # passed | failed
    failures: list[str]
    trends: dict[str, Trend]
    p99_warmup_ms: float
    p99_after_ms: float
    errors: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "failures": self.failures,
            "p99_warmup_ms": self.p99_warmup_ms,
            "p99_after_warmup_ms": self.p99_after_ms,
            "p99_ratio": round(self.p99_after_ms / self.p99_warmup_ms, 3) if self.p99_warmup_ms else None,
            "errors": self.errors,
            "trends": {name: t.as_dict() for name, t in sorted(self.trends.items())},
        }


def decide(
    trends: dict[str, Trend],
    p99_warmup_ms: float,
    p99_after_ms: float,
    errors: int,
    p99_ratio: float = P99_RATIO,
) -> Verdict:
    failures = [
        f"{t.metric} grows: +{t.growth:.0f} {t.unit} over the window > {t.allowed:.0f} allowed"
        for t in trends.values()
        if not t.passed
    ]
    if p99_warmup_ms > 0 and p99_after_ms > max(p99_ratio * p99_warmup_ms, p99_warmup_ms + P99_NOISE_FLOOR_MS):
        failures.append(f"intake p99 {p99_after_ms:.1f} ms > {p99_ratio:g} x warm-up's {p99_warmup_ms:.1f} ms")
    if errors:
        failures.append(f"{errors} errors")
    return Verdict("failed" if failures else "passed", failures, trends, p99_warmup_ms, p99_after_ms, errors)
