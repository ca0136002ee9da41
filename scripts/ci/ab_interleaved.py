"""Before/after for the LLM boundary with both commits live at once, taking turns every few calls.

    python -m scripts.ci.ab_interleaved --old REF [--new REF] [--blocks 60] [--calls 25]
                                        [--tolerance 0.10] [--work-dir DIR] [--output FILE]

Why beside ``ab_compare``: that one alternates whole benchmark runs (about 35 s each), and this
shared machine's speed drifts on that scale: on one hour, two runs of the same commit differ by
more than the 10% being judged. Here each commit's topology is up for the whole run
(``scripts/ci/ab_llm_driver.py`` in each clone, with that clone's interpreter and code), and the two
take turns in blocks of ``--calls`` boundary calls (a block takes well under a second), the order
alternating per pair of blocks, so a slow minute falls on both sides alike. Per call the overhead is
the bench's: wall time minus the provider latency in the call's own ledger row.

``--old`` and ``--new`` may name the same commit: an A/A run, whose ratio shows what the method
itself cannot tell apart (its spread is the resolution to quote beside any A/B).

Reported: both sides' pooled p50 and p99, the ratio new/old of each, and the ratio of the p50s per
pair of blocks (median and quartiles: a shift that holds in most pairs is a change, one carried by a
few pairs is noise). Beside them, where the time goes (``parts``): the p50 wall time of the
admission's and the settle's unit of work, and of a reference unit that runs ``SELECT 1`` in the
same pool, transaction and tenant context (what every unit of work pays). Verdict: both pooled
overhead ratios within ``--tolerance``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from scripts.bench.topology_bench import percentile
from scripts.ci.ab_compare import SIDES, checkout, side_python
from scripts.harness import EXIT_CODES_HELP, REPO_ROOT, ExitCode, emit

DRIVER = Path(__file__).with_name("ab_llm_driver.py")


class Side:
    """One commit's driver process: ``ask`` sends a request line and reads the answer line."""

    def __init__(self, name: str, directory: Path, warmup: int) -> None:
        python, env = side_python(directory)
        # python -c puts the working directory (the side's checkout) first on the import path, and
        # runpy runs the driver from this checkout without adding its folder: the side's code is imported.
        launch = f"import runpy; runpy.run_path({str(DRIVER)!r}, run_name='__main__')"
        argv = [python, "-c", launch, "--name", f"ab-il-{name}", "--artifacts", str(directory / "artifacts" / "ab-il")]
        self.name = name
        self.process = subprocess.Popen(
            [*argv, "--warmup", str(warmup)],
            cwd=directory,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} side's driver ended (exit {self.process.wait()})")
        try:
            answer: Any = json.loads(line)
        except json.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):  # not JSON, or JSON but not an answer
            raise RuntimeError(f"the {self.name} side wrote a line outside the protocol: {line.strip()[:200]!r}")
        if "error" in answer:
            raise RuntimeError(f"the {self.name} side: {answer['error']}")
        return answer

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None and self.process.stdin is not None:
            try:
                self.process.stdin.write(json.dumps({"quit": True}) + "\n")
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout=120)  # the driver tears its topology down
        except subprocess.TimeoutExpired:
            self.process.kill()


def order(block: int) -> tuple[str, ...]:
    """old-new, new-old, old-new, ...: neither side always goes first (a warmer cache, a fresh slice)."""
    return SIDES if block % 2 == 0 else SIDES[::-1]


def parts(answers: list[dict[str, Any]]) -> dict[str, float | None]:
    """p50 of each unit of work of a side's calls (admission, settle) and of its reference units;
    None where a side timed none (a call with other than two units is not counted: it is not the
    admission-then-settle path)."""
    units = [unit for answer in answers for unit in answer["units_ms"] if len(unit) == 2]
    reference = [ms for answer in answers for ms in answer["reference_ms"]]
    return {
        "admission_unit_p50_ms": percentile([u[0] for u in units], 50) if units else None,
        "settle_unit_p50_ms": percentile([u[1] for u in units], 50) if units else None,
        "reference_unit_p50_ms": percentile(reference, 50) if reference else None,
    }


def summarize(blocks: dict[str, list[list[float]]], tolerance: float) -> dict[str, Any]:
    pooled = {side: [ms for block in blocks[side] for ms in block] for side in SIDES}
    figures = {
        side: {"overhead_p50_ms": percentile(pooled[side], 50), "overhead_p99_ms": percentile(pooled[side], 99)}
        for side in SIDES
    }
    ratio = {key: round(figures["new"][key] / figures["old"][key], 3) for key in figures["old"]}
    per_pair = []
    for start in range(0, min(len(blocks["old"]), len(blocks["new"])) - 1, 2):
        old = statistics.median(blocks["old"][start] + blocks["old"][start + 1])
        new = statistics.median(blocks["new"][start] + blocks["new"][start + 1])
        per_pair.append(new / old)
    quartiles = statistics.quantiles(per_pair, n=4) if len(per_pair) >= 2 else [float("nan")] * 3
    return {
        "pooled": figures,
        "calls": {side: len(pooled[side]) for side in SIDES},
        "ratio_new_to_old": ratio,
        "p50_ratio_per_pair_of_blocks": {
            "pairs": len(per_pair),
            "median": round(statistics.median(per_pair), 3) if per_pair else None,
            "q1": round(quartiles[0], 3),
            "q3": round(quartiles[2], 3),
            "new_slower_in": sum(r > 1 for r in per_pair),
        },
        "tolerance": tolerance,
        "within_tolerance": all(value <= 1 + tolerance for value in ratio.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old", required=True, help="the baseline commit")
    parser.add_argument("--new", default="HEAD", help="the commit under test (default HEAD; the same as --old: A/A)")
    parser.add_argument("--blocks", type=int, default=60, help="blocks per side (even)")
    parser.add_argument("--calls", type=int, default=25, help="boundary calls per block")
    parser.add_argument("--warmup", type=int, default=30, help="calls each side makes first, not counted")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--work-dir", type=Path, help="clones go here (default: a new temporary directory)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "artifacts" / "bench" / "ab_interleaved.json")
    args = parser.parse_args(argv)
    if args.blocks < 2 or args.blocks % 2 or args.calls < 1:
        parser.error("--blocks must be an even number of at least 2, --calls at least 1")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="ab-interleaved-"))
    dirs = {side: work_dir / side for side in SIDES}
    commits = {side: checkout(getattr(args, side), dirs[side]) for side in SIDES}
    sides = {side: Side(side, dirs[side], args.warmup) for side in SIDES}
    answers: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    try:
        for side in sides.values():
            side.read()  # ready: topology up, services stopped, warmed up
        for block in range(args.blocks):
            for name in order(block):
                answers[name].append(sides[name].ask({"calls": args.calls}))
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    finally:
        for side in sides.values():
            side.close()
    blocks = {side: [answer["overhead_ms"] for answer in answers[side]] for side in SIDES}
    verdict = summarize(blocks, args.tolerance)
    result: dict[str, Any] = {
        "name": "ab_interleaved",
        "command": "python -m scripts.ci.ab_interleaved " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "commits": commits,
        "conditions": {
            "llm": "each commit's own boundary and topology, both up, api and worker stopped, one caller per side; "
            f"turns of {args.calls} calls, {args.blocks} per side, order alternating; overhead = wall time minus "
            "the provider latency in the call's ledger row",
        },
        "results": {"llm": verdict},
        "parts": {side: parts(answers[side]) for side in SIDES},
        "blocks": blocks,
        "within_tolerance": verdict["within_tolerance"],
    }
    emit(result, args.output)
    return ExitCode.PASS if result["within_tolerance"] else ExitCode.GATE_FAILED


if __name__ == "__main__":
    sys.exit(main())
