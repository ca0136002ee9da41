"""Before/after for a change: two commits measured in one run, alternating, on the same machine.

    python -m scripts.ci.ab_compare --old REF [--new REF] [--rounds 3] [--measure ingest|ingest-cpu|llm ...]
                                    [--rate 300] [--duration 20] [--new-context unsigned]
                                    [--work-dir DIR] [--output FILE]

Each commit is cloned fresh and set up (`make setup`). Each round measures both sides, the order
alternating between rounds. Measures:

- ingest: one side's topology comes up and its own scripts/r3/ingestion_under_fire.py drives it
  (profile sanity at --rate for --duration, storms included); each side provisions its tenants
  with its own code, and the open-loop generator itself (scripts/r3/openloop.py) must be the same
  file in both commits (checked: the run refuses otherwise); compared: intake p50 and p99.
- ingest-cpu: the same run with the generator's ``--profile-processes``; compared: CPU milliseconds
  per webhook of the api, the worker and the topology's PostgreSQL, and their total (what decides
  capacity on a machine they share), each from the step's mean cores over its achieved rate.
- llm: each side's own `scripts/bench/llm_boundary_bench.py` (its boundary, its topology); compared:
  the boundary's overhead over a direct call to the same mock provider, p50 and p99 (the isolated
  condition, which both commits measure; a side that also has the realistic condition is run with
  `--realistic-rounds 0`, so no side's isolated figures come after thousands of other calls).
  `--new-context unsigned` measures the new side with the signed tenant context switched back to
  the plain settings it replaced (scripts.bench.context_cost's two states): against a commit from
  before it, what changed besides the signed context.

Reported per side and measure: every round, the medians, and the ratio new/old of the medians. The
verdict: every compared median of the new side within --tolerance (default 10%) of the old. This
machine is shared and noisy: read the spread of the rounds, not only the medians.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.harness import EXIT_CODES_HELP, REPO_ROOT, ExitCode, emit

SIDES = ("old", "new")


def run(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900, ok: tuple[int, ...] = (0,)
) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv[:4])} exited {done.returncode}: {done.stderr[-800:]}")
    return done.stdout


def resolve(ref: str, repo: Path = REPO_ROOT) -> str:
    """The commit ``ref`` names in this repository. A clone reused from an earlier run (--work-dir)
    has a HEAD and branches of its own, so a name resolved there could be an older commit."""
    return run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo).strip()


def checkout(ref: str, where: Path) -> str:
    commit = resolve(ref)
    if not where.exists():
        run(["git", "clone", "--quiet", "--shared", str(REPO_ROOT), str(where)], REPO_ROOT)
    run(["git", "checkout", "--quiet", "--detach", commit], where)  # a shared clone sees every object here
    run(["make", "setup"], where, timeout=1800)
    return run(["git", "rev-parse", "HEAD"], where).strip()


def topology_env(side_dir: Path, name: str) -> dict[str, str]:
    """The operator environment a topology wrote (``export KEY='value'`` lines, values as repr)."""
    env: dict[str, str] = {}
    for line in (side_dir / ".run" / f"{name}.env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = ast.literal_eval(value)
    return env


def side_python(side_dir: Path) -> tuple[str, dict[str, str]]:
    """A side's own interpreter (its ``make setup`` venv) and an environment that imports nothing
    from elsewhere."""
    return str(side_dir / ".venv" / "bin" / "python"), {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def measure_ingest(side_dir: Path, name: str, rate: float, duration: float, *, cpu: bool = False) -> dict[str, Any]:
    python, base = side_python(side_dir)
    run([python, "-m", "scripts.topology", "up", "--name", name], side_dir, base)
    try:
        env = {**base, **topology_env(side_dir, name)}
        output = side_dir / "artifacts" / f"{name}.json"
        generator = side_dir / "scripts" / "r3" / "ingestion_under_fire.py"
        argv = [python, str(generator), "--profile", "sanity", *(["--profile-processes"] if cpu else [])]
        argv += ["--rate", str(rate), "--duration", str(duration), "--baseline-seconds", "0", "--output", str(output)]
        run(argv, side_dir, env, ok=(0, 1, 3))  # a slow round is data; its status is kept
        result = json.loads(output.read_text())
        [profile] = output.parent.glob(f"{name}.profile.*.json") if cpu else [None]
    finally:
        run([python, "-m", "scripts.topology", "down", "--name", name], side_dir, base)
    keys = ("p50_ms", "p99_ms", "achieved_rps", "errors", "status")
    record = {key: result.get(key) for key in keys}
    if profile is not None:
        record.update(cpu_per_webhook(json.loads(profile.read_text())["cores_mean"], result["achieved_rps"]))
    return record


def cpu_per_webhook(cores_mean: dict[str, float], achieved_rps: float) -> dict[str, float]:
    """CPU milliseconds per webhook of the api, the worker (its main process and pool) and this
    topology's PostgreSQL (every process of its cluster), from the step's mean cores per process role
    (scripts/r3/profiling.py: a role the profiler could not attribute to the run is ``other:<role>``,
    and another cluster's PostgreSQL is ``other:postgres``, left out)."""

    def role(name: str) -> float:
        return cores_mean.get(name, 0.0) + cores_mean.get(f"other:{name}", 0.0)

    database = sum(cores for key, cores in cores_mean.items() if key == "postgres" or key.startswith("postgres:"))
    parts = {"api": role("api"), "worker": role("worker"), "postgres": database}
    per = {f"{key}_ms_per_webhook": round(cores / achieved_rps * 1000, 4) for key, cores in parts.items()}
    per["total_ms_per_webhook"] = round(sum(parts.values()) / achieved_rps * 1000, 4)
    return per


def measure_llm(side_dir: Path, name: str, context: str | None = None) -> dict[str, Any]:
    """One run of the side's LLM boundary bench, isolated condition; ``context`` picks the database's
    tenant-context state on a side whose bench has ``--context`` (None: the side's default)."""
    output = side_dir / "artifacts" / f"{name}.json"
    python, base = side_python(side_dir)
    bench = (side_dir / "scripts" / "bench" / "llm_boundary_bench.py").read_text()
    # Only the isolated condition is compared; a side that also measures the realistic one skips it,
    # so both sides run the same procedure on equally fresh tables.
    skip = ["--realistic-rounds", "0"] if "--realistic-rounds" in bench else []
    if context is not None and '"--context"' not in bench:
        raise ValueError(f"{side_dir.name}'s llm_boundary_bench has no --context option")
    state = ["--context", context] if context is not None else []
    argv = [python, "-m", "scripts.bench.llm_boundary_bench", *skip, *state, "--output", str(output)]
    run(argv, side_dir, base, ok=(0, 1, 3))
    result = json.loads(output.read_text())
    keys = ("overhead_p50_ms", "overhead_p99_ms", "cache_hit_p99_ms", "context")
    return {key: result.get(key) for key in keys}


COMPARED = {
    "ingest": ("p50_ms", "p99_ms"),
    "ingest-cpu": tuple(f"{part}_ms_per_webhook" for part in ("api", "worker", "postgres", "total")),
    "llm": ("overhead_p50_ms", "overhead_p99_ms"),
}


def summarize(
    rounds: dict[str, list[dict[str, Any]]], tolerance: float, compared: tuple[str, ...] = COMPARED["ingest"]
) -> dict[str, Any]:
    medians = {
        side: {key: round(statistics.median(r[key] for r in rounds[side]), 3) for key in compared} for side in SIDES
    }
    ratio = {key: round(medians["new"][key] / medians["old"][key], 3) for key in compared}
    return {
        "medians": medians,
        "ratio_new_to_old": ratio,
        "tolerance": tolerance,
        "within_tolerance": all(value <= 1 + tolerance for value in ratio.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old", required=True, help="the baseline commit")
    parser.add_argument("--new", default="HEAD", help="the commit under test (default HEAD)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", action="append", choices=sorted(COMPARED), help="default: both")
    parser.add_argument("--rate", type=float, default=300.0, help="webhooks per second, valid events and storms")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measurement")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument(
        "--new-context",
        choices=("signed", "unsigned"),
        help="llm: the new side's tenant-context state (its bench's --context); unsigned leaves out the signed "
        "context's price, so the A/B shows what else changed since --old",
    )
    parser.add_argument("--work-dir", type=Path, help="clones go here (default: a new temporary directory)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "artifacts" / "bench" / "ab_compare.json")
    args = parser.parse_args(argv)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="ab-ingest-"))
    dirs = {side: work_dir / side for side in SIDES}
    commits = {side: checkout(getattr(args, side), dirs[side]) for side in SIDES}
    generators = {(dirs[side] / "scripts" / "r3" / "openloop.py").read_bytes() for side in SIDES}
    if {"ingest", "ingest-cpu"} & set(args.measure or COMPARED) and len(generators) != 1:
        print("error: scripts/r3/openloop.py differs between the commits: not one instrument", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    measures = args.measure or sorted(COMPARED)
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = {m: {side: [] for side in SIDES} for m in measures}
    for index in range(args.rounds):
        for side in SIDES if index % 2 == 0 else SIDES[::-1]:
            for measure in measures:
                started = time.monotonic()
                name = f"ab-{measure}-{side}-{index}"
                if measure.startswith("ingest"):
                    record = measure_ingest(dirs[side], name, args.rate, args.duration, cpu=measure == "ingest-cpu")
                else:
                    record = measure_llm(dirs[side], name, args.new_context if side == "new" else None)
                record.update(round=index, seconds=round(time.monotonic() - started, 1))
                rounds[measure][side].append(record)
                print(f"round {index} {measure} {side}: {record}", flush=True)
    verdicts = {m: summarize(rounds[m], args.tolerance, COMPARED[m]) for m in measures}
    result = {
        "name": "ab_compare",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "commits": commits,
        "conditions": {
            "ingest": f"each side's scripts/r3/ingestion_under_fire.py (the same open-loop generator), profile "
            f"sanity, {args.rate:g} rps x {args.duration:g} s, storms included, against its own topology",
            "ingest-cpu": "the same as ingest, with --profile-processes: CPU ms per webhook of the api, the "
            "worker and this topology's PostgreSQL (mean cores over the step / achieved rate)",
            "llm": "each side's scripts/bench/llm_boundary_bench.py, isolated condition"
            + (f"; the new side with --context {args.new_context}" if args.new_context else ""),
        },
        "rounds": rounds,
        "results": verdicts,
        "within_tolerance": all(v["within_tolerance"] for v in verdicts.values()),
    }
    emit(result, args.output)
    return ExitCode.PASS if result["within_tolerance"] else ExitCode.GATE_FAILED


if __name__ == "__main__":
    sys.exit(main())
