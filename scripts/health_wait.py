"""The body of both wait scripts: poll one health endpoint until it is ready or time runs out."""

from __future__ import annotations

import argparse
import sys

from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, env_default, failed_checks, poll_until

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def run(description: str, endpoint: str, what: str, argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=description, epilog=EXIT_CODES_HELP)
    parser.add_argument(
        "--base-url",
        default=env_default("E2E_API_BASE_URL", DEFAULT_BASE_URL),
        help=f"api base URL (env E2E_API_BASE_URL, default {DEFAULT_BASE_URL})",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.interval <= 0:
        parser.error("--timeout and --interval must be positive")
    url = args.base_url.rstrip("/") + endpoint
    outcome = poll_until(url, timeout_s=args.timeout, interval_s=args.interval)
    result = {
        "status": "ready" if outcome.ok else "not_ready",
        "url": url,
        "elapsed_s": round(outcome.elapsed_s, 3),
        "attempts": outcome.attempts,
        "last_status": outcome.last_status,
        "last_body": outcome.last_body,
    }
    if outcome.ok:
        emit(result)
        return ExitCode.PASS
    failing = failed_checks(outcome.last_body)
    result["failed"] = failing
    emit(result)
    print(f"{what} not ready after {args.timeout:g}s: failed checks: {', '.join(failing)}", file=sys.stderr)
    return ExitCode.GATE_FAILED
