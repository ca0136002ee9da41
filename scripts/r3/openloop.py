"""An open-loop, constant-rate HTTP load engine (no coordinated omission).

Request ``i`` is due at ``start + i / rate`` and leaves then, whatever the server is doing:
a slow server makes latencies grow, never the schedule stretch. Latency is recorded twice
into HDR histograms (microseconds):

- corrected: from the request's intended start to the end of its response (what a user sees);
- uncorrected: from the moment it actually got a connection (what a closed-loop tool reports).

The engine only reports what happened; judging it (SLOs, expected statuses) is the caller's job.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvloop
from hdrh.histogram import HdrHistogram

from scripts.r3 import http1

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
LATE_START_MS = 10.0  # a request that left this much after its due time counts as a late start
BEHIND_FRACTION = 0.01  # more late starts than this and the generator, not the server, is the story
BEHIND_MIN_COUNT = 5  # below this many, late starts are a shared VM's scheduling noise, not a trend
HIGHEST_TRACKABLE_US = 120_000_000


@dataclass(frozen=True)
class Shot:
    """One request to send; ``kind`` and ``tag`` travel to the outcome for the caller's bookkeeping."""

    method: str
    path: str
    kind: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tag: Any = None


@dataclass
class Outcome:
    index: int
    kind: str
    tag: Any
    due_s: float  # offset from the run's start
    started_s: float  # when the coroutine ran (late start = started - due)
    connected_s: float  # when it had a connection
    done_s: float
    status: int | None
    error: str | None = None  # transport error class, when there was no HTTP answer

    @property
    def corrected_ms(self) -> float:
        return (self.done_s - self.due_s) * 1000

    @property
    def uncorrected_ms(self) -> float:
        return (self.done_s - self.connected_s) * 1000

    @property
    def start_lag_ms(self) -> float:
        return (self.started_s - self.due_s) * 1000


@dataclass
class RunRecord:
    target_rps: float
    duration_s: float
    outcomes: list[Outcome]
    wall_s: float  # from the first due time until the last response
    schedule_s: float  # from the first due time until the last request left
    origin: float = 0.0  # time.perf_counter() of the first due time: outcome offsets count from here

    def late_starts(self, threshold_ms: float = LATE_START_MS) -> int:
        return sum(1 for o in self.outcomes if o.start_lag_ms > threshold_ms)

    def summary(self) -> dict[str, Any]:
        sent = len(self.outcomes)
        answered = [o for o in self.outcomes if o.status is not None]
        return {
            "target_rps": self.target_rps,
            "duration_s": self.duration_s,
            "requests": sent,
            "answered": len(answered),
            # Achieved rate: answered requests over the scheduled window (a late tail lowers it).
            "achieved_rps": round(len(answered) / max(self.wall_s, self.duration_s), 2),
            "send_rps": round(sent / max(self.schedule_s, 1e-9), 2) if sent > 1 else float(sent),
            "late_starts": self.late_starts(),
            "max_start_lag_ms": round(max((o.start_lag_ms for o in self.outcomes), default=0.0), 3),
            "latency_ms": {
                "corrected": percentiles(latency_histogram(self.outcomes)),
                "uncorrected": percentiles(latency_histogram(self.outcomes, corrected=False)),
            },
        }

    def timeseries(self) -> list[dict[str, Any]]:
        """Per second of the schedule: requests due, corrected p50/p99/max, and non-2xx/transport counts."""
        buckets: dict[int, list[Outcome]] = {}
        for outcome in self.outcomes:
            buckets.setdefault(int(outcome.due_s), []).append(outcome)
        series = []
        for second in sorted(buckets):
            rows = buckets[second]
            hist = latency_histogram(rows)
            series.append(
                {
                    "t_s": second,
                    "requests": len(rows),
                    "p50_ms": hist.get_value_at_percentile(50) / 1000,
                    "p99_ms": hist.get_value_at_percentile(99) / 1000,
                    "max_ms": hist.get_max_value() / 1000,
                    "transport_errors": sum(1 for o in rows if o.status is None),
                    "server_errors": sum(1 for o in rows if o.status is not None and o.status >= 500),
                }
            )
        return series


def latency_histogram(outcomes: list[Outcome], corrected: bool = True) -> HdrHistogram:
    """Latencies in microseconds (clamped to the trackable range), corrected or uncorrected."""
    hist = HdrHistogram(1, HIGHEST_TRACKABLE_US, 3)
    for outcome in outcomes:
        ms = outcome.corrected_ms if corrected else outcome.uncorrected_ms
        hist.record_value(min(max(1, int(ms * 1000)), HIGHEST_TRACKABLE_US))
    return hist


def answer_counts(outcomes: list[Outcome], prefix: str = "") -> dict[str, int]:
    """How many requests got each HTTP status, or ``transport:<error>`` when none came back."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        key = prefix + (str(outcome.status) if outcome.status is not None else f"transport:{outcome.error}")
        counts[key] = counts.get(key, 0) + 1
    return counts


def percentiles(hist: HdrHistogram) -> dict[str, float]:
    values = {f"p{p:g}": hist.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
    values["max"] = hist.get_max_value() / 1000
    values["mean"] = round(hist.get_mean_value() / 1000, 3)
    return values


async def fire(
    base_url: str,
    make_shot: Callable[[int], Shot],
    *,
    rate: float,
    duration_s: float,
    connections: int = 256,
    timeout_s: float = 30.0,
) -> RunRecord:
    """Send ``rate * duration_s`` requests on schedule; returns every outcome."""
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    total = max(1, round(rate * duration_s))
    origin = http1.Origin.parse(base_url)
    pool = http1.ConnectionPool(origin, connections)
    outcomes: list[Outcome] = []
    loop = asyncio.get_running_loop()
    start = time.perf_counter() + 0.05

    async def one(index: int, due: float) -> None:
        started = time.perf_counter()
        shot = make_shot(index)
        request = http1.build_request(origin, shot.method, shot.path, shot.headers, shot.body)
        status: int | None = None
        error: str | None = None
        connected = started
        try:
            async with asyncio.timeout(timeout_s):  # no extra task per request, unlike wait_for
                status, connected = await http1.send(pool, request)
        except (TimeoutError, OSError, http1.ProtocolError) as exc:
            error = type(exc).__name__
        done = time.perf_counter()
        outcomes.append(
            Outcome(
                index, shot.kind, shot.tag, due - start, started - start, connected - start, done - start, status, error
            )
        )

    # The cyclic collector is off while requests are due: a full collection walks every outcome
    # recorded so far (40 ms at 15,000 of them here), and the requests it holds up would be charged
    # to the server. Nothing is lost: it runs once the schedule is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        tasks: set[asyncio.Task[None]] = set()
        index = 0
        while index < total:
            now = time.perf_counter()
            while index < total and start + index / rate <= now:  # everything due leaves now
                task = loop.create_task(one(index, start + index / rate))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                index += 1
            if index < total:
                await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
        schedule_end = time.perf_counter()
        if tasks:
            await asyncio.gather(*tasks)
        wall_end = time.perf_counter()
    finally:
        pool.close()
        if collecting:
            gc.enable()
            gc.collect()
    outcomes.sort(key=lambda o: o.index)
    return RunRecord(rate, duration_s, outcomes, wall_end - start, schedule_end - start, start)


def run_fire(base_url: str, make_shot: Callable[[int], Shot], **options: Any) -> RunRecord:
    """``fire`` on its own uvloop event loop: the generator shares the machine with what it measures,
    and uvloop spends less CPU per request than asyncio's default loop."""
    return uvloop.run(fire(base_url, make_shot, **options))


def generator_fell_behind(summary: dict[str, Any]) -> bool:
    """Too many requests left late for the result to describe the server rather than the generator.

    A fraction alone is unfair to short runs: at 50 requests, one start 27 ms late (seen on a busy
    CI box) would be 2% and void the measurement, though latency is charged from the intended
    start either way.
    """
    late, requests = summary["late_starts"], summary["requests"]
    return bool(late > max(BEHIND_FRACTION * requests, BEHIND_MIN_COUNT))
