"""The soak: steady storm-mix webhooks plus LLM background load for N minutes on a topology of its
own, sampled every few seconds, then judged: after the warm-up nothing may grow with time.

    python -m scripts.soak [--minutes 30] [--rps R] [--housekeeping on|off] [--sample-interval 10]

Ingest is the ingestion-under-fire generator (``scripts.r3``: open loop, storms mixed in) at
``--rps``: by default half the ``max_sustainable_rps`` of a capacity sweep (``--sweep-file``: this
checkout's own, or a published one such as docs/perf/2026-12-06-full-physics-sweep.json), else
DEFAULT_RPS. The LLM background load is ``scripts.phase8.llm_background_load`` at ``--llm-rate``.
A sampler records each service's memory, every table's and index's size, the pruned tables' row
counts, the outbox backlog, the broker queue depth and the attribution lag; intake p99 is taken per
sample window.

Verdict (``scripts.soak.verdict``): after the warm-up (the first 5 minutes; a third of the run for
runs shorter than 15 minutes) every judged series' fitted trend adds at most 10% of its level (or
its unit's noise floor) over the rest of the run; intake p99 after the warm-up within 1.5x of the
warm-up's; zero errors (HTTP errors, unexpected answers, events lost or doubled, LLM tasks not
ledgered). Data and ledger tables grow with traffic by design and are reported, not judged.

Housekeeping runs with a retention of a quarter of the warm-up (not the production days), so the
pruned tables reach their steady state within the warm-up. Their row counts are judged in every run;
their sizes on disk only when the judged window lasts at least MIN_BYTES_WINDOW_S: a pruned table's
files grow until autovacuum first frees space for reuse (after 5,000 dead rows on the queue tables,
migration 0016), minutes into a run at these rates, so a shorter window would judge vacuum's
schedule, not housekeeping. Such runs list the sizes under ``not_judged``, and plot them.

``--housekeeping off`` is the control: the worker prunes nothing, the pruned tables grow, and the
run exits 0 only if the verdict sees that growth (proof that it would catch a leak).

Writes artifacts/soak/soak_summary.json, soak.svg and samples.jsonl (one line per sample).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from sqlalchemy import create_engine, text

from scripts.harness import (
    EXIT_CODES_HELP,
    REPO_ROOT,
    ExitCode,
    emit,
    git_sha,
    read_json_object,
    redact_dsn,
    sync_dsn,
)
from scripts.r3 import database
from scripts.r3.openloop import HIGHEST_TRACKABLE_US, generator_fell_behind, latency_histogram, run_fire
from scripts.r3.storms import STORM_WEIGHTS, StormPlan, judge
from scripts.soak import plot, samplers
from scripts.soak.verdict import NOISE_FLOOR, P99_RATIO, SLOPE_FRACTION, decide, judge_series, pruned_row_floors
from scripts.topology import Topology, TopologyConfig, TopologyError

DEFAULT_RPS = 50.0  # without a sweep: above the 46 rps every `make phase8` holds (EG3.4)
SWEEP_FILE = REPO_ROOT / "artifacts" / "b07-phase8" / "r3" / "ingestion_sweep.json"
FULL_WARMUP_S = 300.0
LLM_SETTLE_S = 90.0  # the background load waits this long for its tasks to be ledgered
DRAIN_TIMEOUT_S = 120.0
MIN_BYTES_WINDOW_S = 600.0


@dataclass(frozen=True)
class Timing:
    duration_s: float
    sample_s: float
    warmup_s: float
    retention_s: float  # every housekeeping retention during the soak
    housekeeping_interval_s: float

    @classmethod
    def for_run(cls, minutes: float, sample_s: float, warmup_minutes: float | None) -> Timing:
        duration = minutes * 60
        warmup = warmup_minutes * 60 if warmup_minutes is not None else min(FULL_WARMUP_S, duration / 3)
        retention = max(1.0, warmup / 4)
        return cls(duration, sample_s, warmup, retention, max(1.0, round(retention / 3, 1)))

    @property
    def judges_bytes(self) -> bool:
        return self.duration_s - self.warmup_s >= MIN_BYTES_WINDOW_S

    def env(self, housekeeping: bool) -> dict[str, str]:
        retention = str(self.retention_s)
        return {
            "HOUSEKEEPING_ENABLED": "true" if housekeeping else "false",
            "HOUSEKEEPING_INTERVAL_S": str(self.housekeeping_interval_s),
            "RETENTION_OUTBOX_S": retention,
            "RETENTION_BROKER_S": retention,
            "RETENTION_LLM_CACHE_S": retention,
            "RETENTION_FINISHED_JOBS_S": retention,
        }


def half_rate(sweep_file: Path) -> float | None:
    """Half a sweep's max sustainable rate, or None when it records none."""
    sustained = read_json_object(sweep_file).get("max_sustainable_rps")
    return round(sustained / 2, 1) if isinstance(sustained, int | float) and sustained > 0 else None


def default_rps(sweep_file: Path) -> tuple[float, str]:
    """Half the max sustainable rate of the sweep in ``sweep_file`` (this checkout's own by default, or a
    published one such as docs/perf/*-full-physics-sweep.json), else DEFAULT_RPS."""
    rate = half_rate(sweep_file)
    if rate is not None:
        return rate, f"half of max_sustainable_rps {rate * 2:g} in {sweep_file}"
    return DEFAULT_RPS, f"default {DEFAULT_RPS:g} rps (no sustainable rate at {sweep_file})"


@dataclass
class Samples:
    """What the sampler thread records; the main thread reads it once the sampler has stopped."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def sample_loop(
    topology: Topology, dsn: str, origin: float, every_s: float, stop: threading.Event, out: Samples
) -> None:
    engine = create_engine(sync_dsn(dsn), pool_size=1, max_overflow=0)
    services: dict[str, tuple[int | None, bool]] = {name: (p.pid, True) for name, p in topology.processes.items()}
    if topology.embedded is not None:
        services["postgres"] = (topology.embedded.pid(), False)
    try:
        while True:
            at = time.monotonic() - origin
            try:
                memory = samplers.memory(services)
                row: dict[str, Any] = {"t_s": round(at, 3), **samplers.database(engine)}
                row["memory"] = {name: m.__dict__ for name, m in memory.items()}
                out.rows.append(row)
            except Exception as exc:  # one failed sample is a gap in the plot, and counted
                out.errors.append(f"{at:.0f}s: {type(exc).__name__}: {redact_dsn(str(exc))[:200]}")
            if stop.wait(max(0.0, every_s - (time.monotonic() - origin - at))):
                return
    finally:
        engine.dispose()


@dataclass
class Ingest:
    """Per-window intake results, and the pooled latency before and after the warm-up."""

    windows: list[dict[str, Any]] = field(default_factory=list)
    warmup: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, HIGHEST_TRACKABLE_US, 3))
    after: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, HIGHEST_TRACKABLE_US, 3))
    expected: Counter[str] = field(default_factory=Counter)  # events, dead_letters, conversions
    errors: int = 0
    requests: int = 0
    late_starts: int = 0
    answers: Counter[str] = field(default_factory=Counter)


def ingest(topology: Topology, tenants: list[Any], rps: float, timing: Timing, origin: float) -> Ingest:
    """Storm-mix windows back to back until the duration has passed; each window a fresh plan (new ids)."""
    result, run_tag, number = Ingest(), uuid.uuid4().hex[:8], 0
    while (started := time.monotonic() - origin) < timing.duration_s:
        seconds = min(timing.sample_s, timing.duration_s - started)
        plan = StormPlan(tenants, f"{run_tag}w{number}", rps, seed=number, weights=dict(STORM_WEIGHTS))
        record = run_fire(topology.api_url, plan.shot, rate=rps, duration_s=max(seconds, 1 / rps), timeout_s=30)
        verdict = judge(record.outcomes, plan)
        hist = latency_histogram(record.outcomes)
        (result.warmup if started < timing.warmup_s else result.after).add(hist)
        errors = verdict.errors + verdict.groups_without_one_accept
        result.errors += errors
        result.requests += len(record.outcomes)
        result.late_starts += record.late_starts()
        result.answers.update(verdict.by_status)
        result.expected["events"] += sum(verdict.expected_events_per_tenant.values())
        result.expected["dead_letters"] += sum(verdict.expected_dead_letters_per_tenant.values())
        result.expected["conversions"] += sum(verdict.expected_conversions_per_tenant.values())
        result.windows.append(
            {
                "t_s": round(started, 3),
                "seconds": round(seconds, 3),
                "requests": len(record.outcomes),
                "p99_ms": hist.get_value_at_percentile(99) / 1000,
                "errors": errors,
                "late_starts": record.late_starts(),
            }
        )
        number += 1
    return result


def start_llm_load(topology: Topology, rate: float, timing: Timing, artifact_dir: Path) -> tuple[Any, Path, Path]:
    stop_file, output = artifact_dir / "llm_background.stop", artifact_dir / "llm_background.json"
    stop_file.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "scripts.phase8.llm_background_load",
        "--rate",
        str(rate),
        "--duration",
        str(timing.duration_s),
        "--stop-file",
        str(stop_file),
        "--settle-timeout",
        str(LLM_SETTLE_S),
        "--output",
        str(output),
    ]
    log = (artifact_dir / "logs" / "llm_background.log").open("ab")
    env = {**os.environ, **topology.operator_env}
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    return proc, stop_file, output


def lasting(rows: list[dict[str, Any]], service: str, warmup_s: float) -> set[str]:
    """The service's processes alive in every sample after the warm-up (the judged window)."""
    after = [set(row["memory"][service].get("by_pid", {})) for row in rows if row["t_s"] >= warmup_s]
    return set.intersection(*after) if after else set()


def memory_unjudged(rows: list[dict[str, Any]], warmup_s: float) -> dict[str, str]:
    """Services whose memory the lasting processes cannot speak for: fewer than half of the processes
    of the judged window's first sample lived through it (all of them replaced, say, reads as zero
    memory and no growth). Each is a reason the soak fails, never a pass."""
    after = [row for row in rows if row["t_s"] >= warmup_s]
    found = {}
    for service, mem in (after[0]["memory"] if after else {}).items():
        if "by_pid" not in mem:
            continue
        at_start, kept = len(mem["by_pid"]), len(lasting(rows, service, warmup_s))
        if at_start and kept * 2 < at_start:
            found[service] = f"{kept} of the {at_start} processes at the window's start lived through it"
    return found


def series(rows: list[dict[str, Any]], warmup_s: float = 0.0) -> dict[str, tuple[str, list[tuple[float, float]]]]:
    """Every series judged by its trend: {name: (unit, points)} (p99 is judged against the warm-up's).

    A service's memory is the anonymous RSS of its processes that lived through the whole judged
    window (a leak grows a process), and how many processes it had is a series of its own (a leak
    of processes grows that): a process that starts late in the window, such as an autovacuum worker
    or a backend a pool opened, is neither, and summed with the rest it read as growth."""
    out: dict[str, tuple[str, list[tuple[float, float]]]] = {}

    def add(name: str, unit: str, t: float, value: float) -> None:
        out.setdefault(name, (unit, []))[1].append((t, value))

    services = set(rows[0]["memory"]) if rows else set()
    kept = {service: lasting(rows, service, warmup_s) for service in services}
    for row in rows:
        t = row["t_s"]
        for service, mem in row["memory"].items():
            by_pid = mem.get("by_pid")
            if by_pid is None:  # samples from before by_pid: the sum over every process
                add(f"rss_anon:{service}", "bytes", t, mem["anon"])
                continue
            add(f"rss_anon:{service}", "bytes", t, sum(by_pid.get(pid, 0) for pid in kept.get(service, ())))
            add(f"processes:{service}", "processes", t, len(by_pid))
        for table in samplers.PRUNED_TABLES:
            table_bytes, index_bytes = row["sizes"].get(table, (0, 0))
            add(f"bytes:{table}", "table_bytes", t, table_bytes + index_bytes)
            add(f"rows:{table}", "rows", t, row["rows"].get(table, 0))
        add("outbox_backlog", "count", t, row["outbox_backlog"])
        add("broker_depth", "count", t, row["broker_depth"])
        add("attribution_lag_s", "seconds", t, row["attribution_lag_s"])
    return out


def unjudged_growth(rows: list[dict[str, Any]], warmup_s: float) -> dict[str, dict[str, float]]:
    """Tables outside PRUNED_TABLES (data and ledgers, which grow with traffic by design): bytes at
    the end of the warm-up and at the end, and the rate in between."""
    after = [r for r in rows if r["t_s"] >= warmup_s]
    if len(after) < 2:
        return {}
    first, last = after[0], after[-1]
    growth = {}
    for table in sorted(set(last["sizes"]) - set(samplers.PRUNED_TABLES)):
        begin, end = sum(first["sizes"].get(table, (0, 0))), sum(last["sizes"][table])
        if end != begin:
            rate = (end - begin) / max(last["t_s"] - first["t_s"], 1e-9)
            growth[table] = {"bytes_at_warmup_end": begin, "bytes_at_end": end, "bytes_per_s": round(rate, 1)}
    return growth


def housekeeping_totals(dsn: str) -> dict[str, int]:
    engine = create_engine(sync_dsn(dsn))
    try:
        with engine.connect() as conn:
            return {r.kind: int(r.removed) for r in conn.execute(text("SELECT kind, removed FROM housekeeping_totals"))}
    finally:
        engine.dispose()


def write_plot(
    path: Path, rows: list[dict[str, Any]], windows: list[dict[str, Any]], timing: Timing, title: str
) -> None:
    judged = series(rows, timing.warmup_s)

    def pick(prefix: str) -> dict[str, list[tuple[float, float]]]:
        return {name.split(":", 1)[1]: pts for name, (_, pts) in judged.items() if name.startswith(prefix)}

    state: dict[str, list[tuple[float, float]]] = {
        name: judged[name][1] for name in ("outbox_backlog", "broker_depth") if name in judged
    }
    lag = judged["attribution_lag_s"][1] if "attribution_lag_s" in judged else []
    p99: list[tuple[float, float]] = [(w["t_s"] + w["seconds"], w["p99_ms"]) for w in windows]
    panels: list[tuple[str, str, dict[str, list[tuple[float, float]]]]] = [
        ("memory: anonymous RSS per service", "bytes", pick("rss_anon:")),
        ("pruned tables: rows", "rows", pick("rows:")),
        ("pruned tables: table + index bytes", "bytes", pick("bytes:")),
        ("outbox backlog and broker queue depth", "count", state),
        ("attribution lag (oldest recompute not done)", "seconds", {"lag": lag}),
        ("intake p99 per window", "ms", {"p99": p99}),
    ]
    plot.write_svg(path, title, panels, timing.duration_s, timing.warmup_s)


def run(args: argparse.Namespace) -> tuple[ExitCode, dict[str, Any]]:
    artifact_dir: Path = args.artifact_dir.resolve()
    (artifact_dir / "logs").mkdir(parents=True, exist_ok=True)
    timing = Timing.for_run(args.minutes, args.sample_interval, args.warmup_minutes)
    rps, rps_source = (args.rps, "--rps") if args.rps else default_rps(args.sweep_file)
    housekeeping = args.housekeeping == "on"
    config = TopologyConfig(
        artifact_dir=artifact_dir, name="soak", extra_env=timing.env(housekeeping), stop_grace_s=5.0
    )
    started = time.monotonic()
    samples, stop = Samples(), threading.Event()
    with Topology(config) as topology:
        assert topology.dsns is not None
        engine = database.runtime_engine(topology.dsns.runtime_sync)
        tenants = database.provision_tenants(engine, args.tenants, f"soak-{uuid.uuid4().hex[:6]}")
        llm, stop_file, llm_output = start_llm_load(topology, args.llm_rate, timing, artifact_dir)
        origin = time.monotonic()
        sampler = threading.Thread(
            target=sample_loop,
            args=(topology, topology.dsns.ops, origin, timing.sample_s, stop, samples),
            name="soak-sampler",
            daemon=True,
        )
        sampler.start()
        try:
            print(f"[soak] {rps:g} rps ({rps_source}) for {timing.duration_s:g} s", file=sys.stderr, flush=True)
            load = ingest(topology, tenants, rps, timing, origin)
        finally:
            stop.set()
            stop_file.touch()
            sampler.join(timeout=30)
        with contextlib.suppress(subprocess.TimeoutExpired):
            llm.wait(timeout=LLM_SETTLE_S + 60)
        if llm.poll() is None:
            llm.kill()
        attributed, drain_s = database.wait_attributed(engine, tenants, DRAIN_TIMEOUT_S)
        stored = [database.stored_counts(engine, tenant) for tenant in tenants]
        engine.dispose()
        removed = housekeeping_totals(topology.dsns.ops)
    llm_result = read_json_object(llm_output)
    counts = {
        "expected_events": load.expected["events"],
        "stored_events": sum(s.events for s in stored),
        "expected_dead_letters": load.expected["dead_letters"],
        "stored_dead_letters": sum(s.dead_letters for s in stored),
        "expected_conversions": load.expected["conversions"],
        "stored_conversions": sum(s.conversions for s in stored),
        "attributed_conversions": sum(s.attributed_conversions for s in stored),
        "attribution_drain_s": drain_s,
    }
    lost = int(counts["expected_events"] != counts["stored_events"])
    lost += int(counts["expected_dead_letters"] != counts["stored_dead_letters"])
    lost += int(not attributed or counts["attributed_conversions"] != counts["stored_conversions"])
    llm_errors = 0 if llm_result.get("status") == "passed" else 1
    unjudged_memory = memory_unjudged(samples.rows, timing.warmup_s)
    errors = load.errors + lost + llm_errors + len(samples.errors) + len(unjudged_memory)
    judged = series(samples.rows, timing.warmup_s)
    not_judged = [] if timing.judges_bytes else sorted(name for name in judged if name.startswith("bytes:"))
    judged = {name: points for name, points in judged.items() if name not in not_judged}
    floors = pruned_row_floors(samplers.PRUNED_TABLES, rps, timing.housekeeping_interval_s)
    trends = judge_series(judged, timing.warmup_s, args.slope_fraction, floors)
    warm_p99 = load.warmup.get_value_at_percentile(99) / 1000
    after_p99 = load.after.get_value_at_percentile(99) / 1000
    verdict = decide(trends, warm_p99, after_p99, errors, args.p99_ratio)
    behind = generator_fell_behind({"late_starts": load.late_starts, "requests": load.requests})
    title = f"soak: {rps:g} rps for {args.minutes:g} min, housekeeping {args.housekeeping} -> {verdict.status}"
    write_plot(artifact_dir / "soak.svg", samples.rows, load.windows, timing, title)
    with (artifact_dir / "samples.jsonl").open("w") as handle:
        for row in samples.rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    grown = sorted(name for name, t in trends.items() if not t.passed and name.split(":")[-1] in samplers.PRUNED_TABLES)
    summary: dict[str, Any] = {
        "command": " ".join(["python -m scripts.soak", *sys.argv[1:]]),  # what `nox -s soak -- ARGS` runs
        "git_sha": git_sha(),
        "verdict": verdict.as_dict(),
        "not_judged": {name: f"judged window < {MIN_BYTES_WINDOW_S:g} s (see --help)" for name in not_judged},
        "memory_unjudged": unjudged_memory,
        "config": {
            "minutes": args.minutes,
            "rps": rps,
            "rps_source": rps_source,
            "llm_rate": args.llm_rate,
            "tenants": args.tenants,
            "housekeeping": args.housekeeping,
            "sample_interval_s": timing.sample_s,
            "warmup_s": timing.warmup_s,
            "retention_s": timing.retention_s,
            "housekeeping_interval_s": timing.housekeeping_interval_s,
            "judges_table_bytes": timing.judges_bytes,
            "slope_fraction": args.slope_fraction,
            "noise_floor": NOISE_FLOOR,
            "p99_ratio": args.p99_ratio,
        },
        "load": {
            "requests": load.requests,
            "answers": dict(load.answers),
            "late_starts": load.late_starts,
            "generator_behind": behind,
            "windows": load.windows,
        },
        "counts": counts,
        "llm_background": {k: llm_result.get(k) for k in ("status", "requests", "accepted", "ledgered", "answers")},
        "housekeeping_removed": removed,
        "grows_by_design": unjudged_growth(samples.rows, timing.warmup_s),
        "sampler_errors": samples.errors,
        "samples": len(samples.rows),
        "took_s": round(time.monotonic() - started, 1),
    }
    if housekeeping:
        summary["status"] = "invalid_measurement" if behind and verdict.status != "passed" else verdict.status
        codes = {"passed": ExitCode.PASS, "failed": ExitCode.GATE_FAILED}
        return codes.get(summary["status"], ExitCode.INVALID_MEASUREMENT), summary
    # The control: housekeeping off must show pruned tables growing, with nothing else wrong.
    summary["control"] = {"pruned_tables_that_grew": grown, "errors": errors}
    summary["status"] = "passed" if grown and not errors else "failed"
    return (ExitCode.PASS if summary["status"] == "passed" else ExitCode.GATE_FAILED), summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.soak",
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the load (fractions allowed)")
    parser.add_argument(
        "--rps", type=float, help="webhooks per second (default: half the sweep's max sustainable rate, see above)"
    )
    parser.add_argument("--sweep-file", type=Path, default=SWEEP_FILE, help="a capacity sweep's result")
    parser.add_argument("--llm-rate", type=float, default=1.0, help="LLM task requests per second")
    parser.add_argument("--tenants", type=int, default=8, help="tenants the webhooks round-robin over")
    parser.add_argument("--sample-interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup-minutes", type=float, help="default: 5, or a third of runs under 15 minutes")
    parser.add_argument("--housekeeping", choices=("on", "off"), default="on", help="off: the control run")
    parser.add_argument("--slope-fraction", type=float, default=SLOPE_FRACTION, help="growth allowed, share of level")
    parser.add_argument("--p99-ratio", type=float, default=P99_RATIO, help="p99 allowed, multiple of warm-up's")
    parser.add_argument("--artifact-dir", type=Path, default=REPO_ROOT / "artifacts" / "soak")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.sample_interval <= 0:
        parser.error("--minutes and --sample-interval must be positive")
    try:
        code, summary = run(args)
    except TopologyError as exc:
        print(f"error: topology: {redact_dsn(str(exc))}", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    emit(summary, args.artifact_dir / "soak_summary.json")
    verdict = summary["verdict"]
    print(f"[soak] {summary['status']}: {'; '.join(verdict['failures']) or 'nothing grew'}", file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
