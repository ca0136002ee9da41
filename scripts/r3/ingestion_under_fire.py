"""Ingestion under fire: signed webhooks at a fixed rate, storms mixed in, every result verified.

    python scripts/r3/ingestion_under_fire.py --profile eg3_4 --base-url URL --dsn DSN [--output FILE]

Open loop (docs/ops/phase8/README.md): requests leave on schedule whatever the server does, and latency counts
from each request's intended start (HDR histogram, corrected and uncorrected). Each step provisions
fresh tenants through the runtime identity, so the database check is exact: events, conversions
and dead letters must equal what the answers promise, attribution must cover every conversion,
and none of the raw PII the run sent may be stored.

Profiles:
  sanity, eg3_4  one step (5 rps x 10 s; 46 rps x 60 s), p95 < 2000 ms, attribution drained after.
  sweep          the sustained capacity sweep: rising steps of 60 s run back to back on one
                 database (backlog, outbox and table growth carry over; nothing is drained
                 between steps). A step holds only if intake p99 < 250 ms, zero errors, exact
                 counts, attribution lag p99 < 5 s (event accepted -> its attribution result
                 visible, see lag.py) and the outbox pending at the step's end is at most one
                 second's worth of the step's accepted events. max_sustainable_rps is the highest
                 rate of the unbroken run of held steps from the bottom. Then the same generator,
                 bodies and durations drive a trivial FastAPI + asyncpg insert endpoint
                 (http_peer.py) on the same PostgreSQL, from the highest rate ours held up:
                 peer_http_insert_max_rps and ratio_to_http_peer (the figure to publish).
  sweep_short    the same sustained machinery with two 10 s steps (tests; not a capacity figure).
  burst          the former sweep: 15 s steps from an empty queue, drained between steps; its
                 highest held rate is max_burst_rps, never max_sustainable_rps.

--profile-processes writes, beside the output, one profile per step (profiling.py: CPU per process
role, the api's answer time to a cheap probe, PostgreSQL wait events and statistics deltas).
The null benchmark runs the same generator against a no-op server (the harness's own floor), and
the plain-insert baseline measures what the database alone sustains, for the ratio.

The API URL defaults to $E2E_API_BASE_URL and the DSN (app_user) to $B07_P4_RUNTIME_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from app.tenants.service import ProvisionedTenant
from scripts.harness import EXIT_CODES_HELP, ExitCode, emit
from scripts.r3 import database, http_peer, null_server, profiling
from scripts.r3.lag import LagObserver, StepLags, lag_stats, outbox_pending
from scripts.r3.openloop import RunRecord, generator_fell_behind, run_fire
from scripts.r3.storms import STORM_WEIGHTS, VALID_ONLY, Judgement, StormPlan, judge
from scripts.r3.target import add_target_arguments, require_target, run_or_fail

MIN_ACHIEVED = 0.98  # achieved rate must be at least this share of the target
# The harness alone (the null benchmark) may use at most this share of the latency bound it judges;
# above it, a busy machine is part of every figure and the run measures the neighbour.
NULL_BENCHMARK_SHARE = 0.1
# "No growing backlog": the outbox pending when a step ends may hold at most this many seconds of
# the step's accepted events.
BACKLOG_SECONDS = 1.0
LADDER = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 1000.0, 1200.0, 1500.0)


@dataclass(frozen=True)
class Profile:
    name: str
    rates: tuple[float, ...]
    duration_s: float
    p95_ms: float | None = None
    p99_ms: float | None = None
    sustained: bool = False  # steps back to back, attribution lag judged, nothing drained between
    lag_p99_ms: float | None = None


PROFILES = {
    "sanity": Profile("sanity", (5.0,), 10.0, p95_ms=2000.0),
    "eg3_4": Profile("eg3_4", (46.0,), 60.0, p95_ms=2000.0),
    "sweep": Profile("sweep", LADDER, 60.0, p99_ms=250.0, sustained=True, lag_p99_ms=5000.0),
    "sweep_short": Profile("sweep_short", (20.0, 40.0), 10.0, p99_ms=250.0, sustained=True, lag_p99_ms=5000.0),
    "burst": Profile(
        "burst",
        (100.0, 200.0, 250.0, 300.0, 350.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0, 1200.0, 1500.0),
        15.0,
        p99_ms=250.0,
    ),
}
STEP_KEYS = ("duration_s", "attribution_lag_p50_ms", "attribution_lag_p99_ms", "outbox_pending_at_end")


def log(message: str) -> None:
    print(f"[r3] {message}", file=sys.stderr, flush=True)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@contextlib.contextmanager
def profiled(
    args: argparse.Namespace, label: str, api_url: str | None, special: dict[int, str]
) -> Iterator[dict[str, Any]]:
    """Profile the block when asked; the whole report lands beside the output, a headline in ``found``."""
    found: dict[str, Any] = {}
    if not args.profile_processes:
        yield found
        return
    profiler = profiling.ProcessProfiler(args.dsn, api_url, special)
    with profiler:
        yield found
    found.update(profiling.headline(profiler.report))
    if args.output:
        path = args.output.with_name(f"{args.output.stem}.profile.{label}.json")
        path.write_text(json.dumps(profiler.report, indent=2, default=str))
        found["file"] = path.name


def timing_problems(summary: dict[str, Any], rate: float, profile: Profile) -> list[str]:
    """What a starved generator or a slow server can cause (never lost or wrong data)."""
    latency = summary["latency_ms"]["corrected"]
    problems = []
    if generator_fell_behind(summary):
        problems.append(f"generator fell behind: {summary['late_starts']} late starts")
    if summary["achieved_rps"] < MIN_ACHIEVED * rate:
        problems.append(f"achieved {summary['achieved_rps']} rps < {MIN_ACHIEVED:.0%} of {rate:g}")
    if profile.p95_ms is not None and latency["p95"] >= profile.p95_ms:
        problems.append(f"p95 {latency['p95']} ms >= {profile.p95_ms:g} ms")
    if profile.p99_ms is not None and latency["p99"] >= profile.p99_ms:
        problems.append(f"p99 {latency['p99']} ms >= {profile.p99_ms:g} ms")
    return problems


def step_record(rate: float, duration_s: float, record: RunRecord, window: dict[str, str]) -> dict[str, Any]:
    summary = record.summary()
    latency = summary["latency_ms"]["corrected"]
    return {
        "target_rps": rate,
        "duration_s": duration_s,
        "achieved_rps": summary["achieved_rps"],
        "p50_ms": latency["p50"],
        "p95_ms": latency["p95"],
        "p99_ms": latency["p99"],
        "p99_9_ms": latency["p99.9"],
        "max_ms": latency["max"],
        "generator_behind": generator_fell_behind(summary),
        "window": window,
        "load": summary,
        "timeseries": record.timeseries(),
    }


def count_check(engine: Engine, tenants: list[ProvisionedTenant], verdict: Judgement) -> dict[str, Any]:
    stored = [database.stored_counts(engine, tenant) for tenant in tenants]
    return {
        "expected_events": sum(verdict.expected_events_per_tenant.values()),
        "stored_events": sum(s.events for s in stored),
        "expected_dead_letters": sum(verdict.expected_dead_letters_per_tenant.values()),
        "stored_dead_letters": sum(s.dead_letters for s in stored),
        "expected_conversions": sum(verdict.expected_conversions_per_tenant.values()),
        "stored_conversions": sum(s.conversions for s in stored),
        "attributed_conversions": sum(s.attributed_conversions for s in stored),
        "outbox_pending": sum(s.outbox_pending for s in stored),
        "mismatched_tenants": [
            str(tenants[i].tenant_id)
            for i, s in enumerate(stored)
            if (s.events, s.dead_letters, s.conversions)
            != (
                verdict.expected_events_per_tenant[i],
                verdict.expected_dead_letters_per_tenant[i],
                verdict.expected_conversions_per_tenant[i],
            )
        ],
    }


def correctness_problems(verdict: Judgement, counts: dict[str, Any], raw_pii: int, drain_note: str) -> list[str]:
    """Lost or wrong data: fails a run whatever the harness did."""
    problems = []
    if verdict.errors:
        problems.append(f"{verdict.errors} errors: {verdict.as_dict()}")
    if verdict.groups_without_one_accept:
        problems.append(f"{verdict.groups_without_one_accept} events without exactly one 202")
    if counts["mismatched_tenants"] or counts["stored_events"] != counts["expected_events"]:
        problems.append(f"database counts differ from the answers: {counts}")
    if counts["outbox_pending"] or counts["attributed_conversions"] != counts["stored_conversions"]:
        problems.append(f"attribution did not cover every conversion {drain_note}")
    if raw_pii:
        problems.append(f"{raw_pii} stored rows hold raw PII")
    return problems


def sustained_problems(step: dict[str, Any], lag_p99_bound_ms: float) -> list[str]:
    """The sustained rule beyond latency and counts: attribution keeps up and no backlog grows."""
    problems = []
    lag = step.get("attribution_lag_p99_ms")
    if lag is None:
        problems.append("no attribution lag measured")
    elif lag >= lag_p99_bound_ms:
        problems.append(f"attribution lag p99 {lag:g} ms >= {lag_p99_bound_ms:g} ms")
    if step["outbox_pending_at_end"] > step["outbox_pending_limit"]:
        problems.append(
            f"outbox pending at end {step['outbox_pending_at_end']} > {step['outbox_pending_limit']} "
            f"({BACKLOG_SECONDS:g} s of accepted events): the backlog grows"
        )
    return problems


def max_held(steps: list[dict[str, Any]]) -> float:
    """The highest rate of the unbroken run of held steps from the bottom (0 when the first failed)."""
    held = 0.0
    for step in sorted(steps, key=lambda s: s["target_rps"]):
        if step["status"] != "passed":
            break
        held = step["target_rps"]
    return held


def floor_met(held_rps: float, floor_rps: float) -> bool:
    """A sweep passes when it held at least its floor, and never when it held no step at all."""
    return held_rps > 0 and held_rps >= floor_rps


def run_step(base_url: str, engine: Engine, args: argparse.Namespace, rate: float, profile: Profile) -> dict[str, Any]:
    """One constant-rate run on fresh tenants from a drained system, judged once attribution drained."""
    run_tag = uuid.uuid4().hex[:10]
    tenants = database.provision_tenants(engine, args.tenants, run_tag)
    plan = StormPlan(tenants, run_tag, rate, seed=args.seed, weights=VALID_ONLY if args.no_storms else STORM_WEIGHTS)
    duration_s = args.duration or profile.duration_s
    log(f"{profile.name}: {rate:g} rps x {duration_s:g} s on {len(tenants)} fresh tenants")
    window = {"started_at": now_iso()}
    with profiled(args, f"{profile.name}-{rate:g}rps", base_url, {}) as profile_found:
        record = run_fire(base_url, plan.shot, rate=rate, duration_s=duration_s, timeout_s=args.timeout)
    window["finished_at"] = now_iso()
    step = step_record(rate, duration_s, record, window)
    verdict = judge(record.outcomes, plan)
    attributed, drain_s = database.wait_attributed(engine, tenants, args.drain_timeout)
    counts = count_check(engine, tenants, verdict)
    raw_pii = database.raw_pii_rows(engine, tenants, plan.raw_pii)
    timing = timing_problems(step["load"], rate, profile)
    correctness = correctness_problems(verdict, counts, raw_pii, f"within {args.drain_timeout:g} s")
    if not attributed and not any(p.startswith("attribution") for p in correctness):
        correctness.append(f"attribution did not drain within {args.drain_timeout:g} s")
    failures = timing + correctness
    step.update(
        errors=verdict.errors,
        status="failed" if failures else "passed",
        failures=failures,
        correctness_failures=correctness,
        answers=verdict.as_dict(),
        counts=counts,
        attribution_drain_s=drain_s,
        raw_pii_rows=raw_pii,
        pii_values_sent=len(plan.raw_pii),
    )
    if profile_found:
        step["profile"] = profile_found
    log(f"{rate:g} rps: {step['status']} p50 {step['p50_ms']} p99 {step['p99_ms']} ms; {'; '.join(failures)}")
    return step


@dataclass
class SustainedStep:
    """What a sustained step leaves to be judged once its events had time to be attributed."""

    step: dict[str, Any]
    tenants: list[ProvisionedTenant]
    plan: StormPlan
    verdict: Judgement


def run_sustained_step(
    engine: Engine,
    args: argparse.Namespace,
    rate: float,
    profile: Profile,
    index: int,
    observer: LagObserver,
    sweep_tenants: list[ProvisionedTenant],
) -> SustainedStep:
    """One step of the sustained sweep: fire, then only what cannot wait (the backlog at the end)."""
    run_tag = uuid.uuid4().hex[:10]
    tenants = database.provision_tenants(engine, args.tenants, run_tag)
    sweep_tenants += tenants
    observer.watch(index, [t.tenant_id for t in tenants])
    plan = StormPlan(tenants, run_tag, rate, seed=args.seed, weights=VALID_ONLY if args.no_storms else STORM_WEIGHTS)
    duration_s = args.duration or profile.duration_s
    log(f"{profile.name}: {rate:g} rps x {duration_s:g} s on {len(tenants)} fresh tenants (sustained)")
    window = {"started_at": now_iso()}
    special = {observer.pid: "lag_observer"} if observer.pid else {}
    with profiled(args, f"ours-{rate:g}rps", args.base_url, special) as profile_found:
        record = run_fire(args.base_url, plan.shot, rate=rate, duration_s=duration_s, timeout_s=args.timeout)
        window["finished_at"] = now_iso()
        pending = outbox_pending(engine, [t.tenant_id for t in sweep_tenants])  # carried backlog counts too
    observer.close(index)
    step = step_record(rate, duration_s, record, window)
    verdict = judge(record.outcomes, plan)
    accepted = sum(1 for o in record.outcomes if o.status == 202)
    step.update(
        errors=verdict.errors,
        answers=verdict.as_dict(),
        accepted_events=accepted,
        outbox_pending_at_end=pending,
        outbox_pending_limit=round(BACKLOG_SECONDS * accepted / duration_s, 1),
        status="running",
    )
    if profile_found:
        step["profile"] = profile_found
    log(
        f"{rate:g} rps: p50 {step['p50_ms']} p99 {step['p99_ms']} ms, {verdict.errors} errors, "
        f"outbox pending at end {pending} (limit {step['outbox_pending_limit']})"
    )
    return SustainedStep(step, tenants, plan, verdict)


def early_stop(item: SustainedStep, profile: Profile) -> list[str]:
    """Failures known as soon as a step ends (intake latency, errors, backlog): the sweep goes no higher."""
    problems = timing_problems(item.step["load"], item.step["target_rps"], profile)
    if item.verdict.errors:
        problems.append(f"{item.verdict.errors} errors")
    if item.step["outbox_pending_at_end"] > item.step["outbox_pending_limit"]:
        problems.append("the outbox backlog grows")
    return problems


def finish_sustained(
    engine: Engine, args: argparse.Namespace, profile: Profile, items: list[SustainedStep], lags: dict[int, StepLags]
) -> None:
    """Judge every step once the observer drained: lag, exact counts, attribution coverage, PII."""
    assert profile.lag_p99_ms is not None
    for index, item in enumerate(items):
        step = item.step
        step.update(lag_stats(lags.get(index, StepLags())))
        counts = count_check(engine, item.tenants, item.verdict)
        raw_pii = database.raw_pii_rows(engine, item.tenants, item.plan.raw_pii)
        correctness = correctness_problems(item.verdict, counts, raw_pii, "by the end of the sweep's drain")
        timed = step.get("attribution_lag_events", 0)
        if timed != counts["stored_events"]:
            correctness.append(f"lag observer timed {timed} of {counts['stored_events']} stored events")
        timing = timing_problems(step["load"], step["target_rps"], profile) + sustained_problems(
            step, profile.lag_p99_ms
        )
        failures = timing + correctness
        step.update(
            status="failed" if failures else "passed",
            failures=failures,
            correctness_failures=correctness,
            counts=counts,
            raw_pii_rows=raw_pii,
            pii_values_sent=len(item.plan.raw_pii),
        )
        log(
            f"{step['target_rps']:g} rps: {step['status']}; lag p50 {step['attribution_lag_p50_ms']} "
            f"p99 {step['attribution_lag_p99_ms']} ms; {'; '.join(failures)}"
        )


def run_sustained(
    engine: Engine, args: argparse.Namespace, profile: Profile, rates: tuple[float, ...]
) -> list[dict[str, Any]]:
    """Rising steps back to back; each step's lag is provisionally judged once the next one ended."""
    assert profile.lag_p99_ms is not None
    items: list[SustainedStep] = []
    sweep_tenants: list[ProvisionedTenant] = []
    with LagObserver(args.dsn) as observer:
        for index, rate in enumerate(rates):
            item = run_sustained_step(engine, args, rate, profile, index, observer, sweep_tenants)
            items.append(item)
            stop = early_stop(item, profile)
            if index > 0 and not stop:  # the previous step's events had a whole step to become visible
                earlier = lag_stats(observer.snapshot().get(index - 1, StepLags()))
                lag = earlier["attribution_lag_p99_ms"]
                if lag is None or lag >= profile.lag_p99_ms:
                    stop.append(f"attribution lag p99 of the {rates[index - 1]:g} rps step: {lag} ms")
            if stop and len(rates) > 1:
                log(f"sweep stops after {rate:g} rps: {'; '.join(stop)}")
                break
        log(f"draining attribution (at most {args.drain_timeout:g} s)")
        lags = observer.finish(args.drain_timeout)
    finish_sustained(engine, args, profile, items, lags)
    return [item.step for item in items]


def run_peer(
    engine: Engine, args: argparse.Namespace, profile: Profile, rates: tuple[float, ...]
) -> list[dict[str, Any]]:
    """The same generator, bodies and step length against the trivial insert endpoint, rising until a
    step fails: intake p99, any non-202 or transport error, or a stored row count unequal to the POSTs."""
    peer_tenant = database.provision_tenants(engine, 1, f"peer-{uuid.uuid4().hex[:6]}")[0]
    steps: list[dict[str, Any]] = []
    with http_peer.running(args.dsn, peer_tenant.tenant_id, args.peer_workers) as url:
        for rate in rates:
            run_tag = uuid.uuid4().hex[:10]
            tenants = database.provision_tenants(engine, args.tenants, run_tag)  # same headers and signatures
            weights = VALID_ONLY if args.no_storms else STORM_WEIGHTS
            plan = StormPlan(tenants, run_tag, rate, seed=args.seed, weights=weights)
            duration_s = args.duration or profile.duration_s
            log(f"http peer: {rate:g} rps x {duration_s:g} s")
            before = http_peer.count_rows(args.dsn, peer_tenant.tenant_id)
            window = {"started_at": now_iso()}
            with profiled(args, f"peer-{rate:g}rps", None, {}) as profile_found:
                record = run_fire(url, plan.shot, rate=rate, duration_s=duration_s, timeout_s=args.timeout)
            window["finished_at"] = now_iso()
            stored = http_peer.count_rows(args.dsn, peer_tenant.tenant_id) - before
            step = step_record(rate, duration_s, record, window)
            errors = sum(1 for o in record.outcomes if o.status != 202)
            failures = timing_problems(step["load"], rate, profile)
            if errors:
                failures.append(f"{errors} answers other than 202")
            if stored != len(record.outcomes):
                failures.append(f"stored {stored} rows for {len(record.outcomes)} requests")
            step.update(errors=errors, stored_rows=stored, status="failed" if failures else "passed", failures=failures)
            if profile_found:
                step["profile"] = profile_found
            log(f"http peer {rate:g} rps: {step['status']} p99 {step['p99_ms']} ms; {'; '.join(failures)}")
            steps.append(step)
            if failures:
                break
    return steps


def null_benchmark_problems(summary: dict[str, Any], profile: Profile) -> list[str]:
    """The harness on a no-op server already costs a visible share of the bound: the run is not valid."""
    bound = profile.p99_ms if profile.p99_ms is not None else profile.p95_ms
    p99 = summary["latency_ms"]["corrected"]["p99"]
    problems = []
    if bound is not None and p99 > NULL_BENCHMARK_SHARE * bound:
        problems.append(f"null benchmark p99 {p99} ms > {NULL_BENCHMARK_SHARE:.0%} of the {bound:g} ms bound")
    if generator_fell_behind(summary):
        problems.append(f"null benchmark: generator fell behind ({summary['late_starts']} late starts)")
    return problems


def null_benchmark(rate: float, duration_s: float) -> dict[str, Any]:
    with null_server.running() as url:
        record = run_fire(url, null_server.null_shot, rate=rate, duration_s=duration_s)
    return record.summary()


def without_timeseries(step: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in step.items() if k != "timeseries"}


def sweep_summary(
    steps: list[dict[str, Any]], peer: list[dict[str, Any]] | None, rates: tuple[float, ...]
) -> dict[str, Any]:
    """The sustained sweep's figures: ours, the peer's and their ratio, with the per-step keys."""
    ours = max_held(steps)
    found: dict[str, Any] = {
        "max_sustainable_rps": ours,
        "ladder_top_held": ours == max(rates),  # then the figure is a lower bound
        "sustained_steps": [{"target_rps": s["target_rps"], **{k: s.get(k) for k in STEP_KEYS}} for s in steps],
    }
    if peer is not None:
        theirs = max_held(peer)
        found.update(
            peer_http_insert_max_rps=theirs,
            peer_ladder_top_held=bool(peer) and theirs == peer[-1]["target_rps"] and peer[-1]["status"] == "passed",
            ratio_to_http_peer=round(ours / theirs, 3) if theirs else None,
            peer_steps=[without_timeseries(s) for s in peer],
        )
    return found


def run(args: argparse.Namespace) -> tuple[ExitCode, dict[str, Any]]:
    profile = PROFILES[args.profile]
    rates = tuple(args.rate) if args.rate else profile.rates
    engine = database.runtime_engine(args.dsn)
    result: dict[str, Any] = {
        "profile": profile.name,
        "base_url": args.base_url,
        "storms": not args.no_storms,
        "sustained": profile.sustained,
        "step_duration_s": args.duration or profile.duration_s,
    }
    invalid_because = []
    if args.null_benchmark:
        log(f"null benchmark at {max(rates):g} rps")
        result["null_benchmark"] = null_benchmark(max(rates), min(10.0, args.duration or profile.duration_s))
        invalid_because += null_benchmark_problems(result["null_benchmark"], profile)
    if args.baseline_seconds > 0:
        baseline_tenant = database.provision_tenants(engine, 1, f"base-{uuid.uuid4().hex[:6]}")[0]
        result["baseline"] = database.baseline_insert_tps(args.dsn, baseline_tenant, args.baseline_seconds)
        log(f"plain-insert baseline: {result['baseline']['baseline_insert_tps']} tps")
    started_at = now_iso()
    steps: list[dict[str, Any]] = []
    if profile.sustained:
        steps = run_sustained(engine, args, profile, rates)
    else:
        for rate in rates:
            step = run_step(args.base_url, engine, args, rate, profile)
            steps.append(step)
            if step["status"] != "passed" and len(rates) > 1:
                break  # a sweep stops at its first failing step
    result["window"] = {"started_at": started_at, "finished_at": now_iso()}
    passed = [s for s in steps if s["status"] == "passed"]
    headline = max(passed, key=lambda s: s["target_rps"]) if passed and len(rates) > 1 else steps[-1]
    result.update({k: headline[k] for k in ("target_rps", "achieved_rps", "p50_ms", "p95_ms", "p99_ms", "errors")})
    result["p99_9_ms"], result["max_ms"] = headline["p99_9_ms"], headline["max_ms"]
    result["timeseries"] = headline["timeseries"]
    if "baseline" in result:
        result["baseline_insert_tps"] = result["baseline"]["baseline_insert_tps"]
        result["ratio_to_baseline"] = round(headline["achieved_rps"] / max(result["baseline_insert_tps"], 1e-9), 4)
    result["steps"] = [without_timeseries(s) for s in steps]
    if profile.sustained and len(rates) > 1:
        peer = None
        if args.http_peer:
            held = max_held(steps)
            peer = run_peer(engine, args, profile, tuple(r for r in rates if r >= held) or rates[-1:])
        result.update(sweep_summary(steps, peer, rates))
        result["sweep_floor_rps"] = args.sweep_floor
        ok = floor_met(result["max_sustainable_rps"], args.sweep_floor)
    elif len(rates) > 1:
        result["max_burst_rps"] = max_held(steps)
        result["sweep_floor_rps"] = args.sweep_floor
        ok = floor_met(result["max_burst_rps"], args.sweep_floor)
    else:
        ok = steps[-1]["status"] == "passed"
    behind = steps[-1]["generator_behind"] and (len(rates) == 1 or steps[-1]["status"] != "passed")
    if behind:
        invalid_because.append(f"generator fell behind: {steps[-1]['load']['late_starts']} late starts")
    # Lost or wrong data fails a run whatever the harness did; only timing can be an invalid measurement.
    # (A sweep is judged by the highest step it held: its last step fails by design, errors included.)
    wrong = len(rates) == 1 and bool(steps[-1]["correctness_failures"])
    result["invalid_because"] = invalid_because
    if wrong or not invalid_because:
        result["status"], code = ("passed", ExitCode.PASS) if ok and not wrong else ("failed", ExitCode.GATE_FAILED)
    else:
        result["status"], code = "invalid_measurement", ExitCode.INVALID_MEASUREMENT
    return code, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="sanity")
    add_target_arguments(parser, "provisioning and counts")
    parser.add_argument("--rate", type=float, action="append", help="override the profile's rate(s); repeatable")
    parser.add_argument("--duration", type=float, help="override the profile's seconds per rate")
    parser.add_argument("--tenants", type=int, default=8, help="fresh tenants per step (traffic round-robins)")
    parser.add_argument("--no-storms", action="store_true", help="valid events only")
    parser.add_argument("--null-benchmark", action="store_true", help="first measure the harness on a no-op server")
    parser.add_argument("--baseline-seconds", type=float, default=5.0, help="plain-insert baseline length; 0 skips")
    parser.add_argument(
        "--sweep-floor", type=float, default=800.0, help="a sweep fails below this sustainable (or burst) rate"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=60.0, help="seconds to wait for attribution (after a step or a sweep)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-http-peer", dest="http_peer", action="store_false", help="sustained sweeps: skip the HTTP peer"
    )
    parser.add_argument("--peer-workers", type=int, default=1, help="the HTTP peer's uvicorn processes (the api's)")
    parser.add_argument(
        "--profile-processes",
        action="store_true",
        help="sample CPU per process, the api's probe time, PostgreSQL waits and statistics during each step; "
        "written beside --output as <stem>.profile.<step>.json",
    )
    parser.add_argument("--output", type=Path, help="also write the JSON result here")
    args = parser.parse_args(argv)
    require_target(args)
    started = time.monotonic()
    code, result = run_or_fail(run, args)
    result["duration_s"] = round(time.monotonic() - started, 3)
    emit(result, args.output)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
