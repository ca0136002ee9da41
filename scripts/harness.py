"""Helpers every operator script shares: exit codes, JSON output, DSN redaction, HTTP polling.

Scripts stay thin: parse flags (with environment fallbacks), call one function, print JSON,
and exit with one of the documented codes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
BACKEND_DIR = REPO_ROOT / "backend"


class ExitCode(IntEnum):
    PASS = 0
    GATE_FAILED = 1
    USAGE_OR_ENVIRONMENT = 2
    INVALID_MEASUREMENT = 3


EXIT_CODES_HELP = (
    "exit codes: 0 pass, 1 gate failed, 2 usage or environment error, "
    "3 invalid measurement (the measurement itself cannot be trusted)"
)

_DSN_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@\s]*)@", re.I)


def redact_dsn(text: str) -> str:
    """Replace the password of every URL-style DSN in ``text`` with ``***``."""
    return _DSN_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def env_default(name: str, fallback: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value else fallback


def emit(payload: dict[str, Any], output: Path | None = None) -> None:
    """Print the result as JSON to stdout and, when asked, write the same document to a file."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
    try:
        print(text, flush=True)
    except BrokenPipeError:  # the reader (e.g. `| grep -q`) has what it needed; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def git_sha() -> str:
    """The checked-out commit, for summaries that must say what code they measured."""
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a file another step wrote, or {} when it is missing or not an object."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def fail(code: ExitCode, message: str, **extra: Any) -> NoReturn:
    """One clear line on stderr plus a JSON verdict on stdout; no traceback."""
    print(f"error: {message}", file=sys.stderr)
    emit({"status": "error" if code == ExitCode.USAGE_OR_ENVIRONMENT else "failed", "error": message, **extra})
    sys.exit(int(code))


def sync_dsn(dsn: str) -> str:
    """Any postgresql DSN (asyncpg, psycopg, sqla+, db+) as a plain libpq URI for psycopg."""
    dsn = re.sub(r"^(sqla|db)\+", "", dsn)
    return re.sub(r"^postgresql\+[a-z0-9]+://", "postgresql://", dsn)


@dataclass
class PollOutcome:
    ok: bool
    elapsed_s: float
    attempts: int
    last_status: int | None
    last_body: Any


def poll_until(
    url: str,
    *,
    timeout_s: float,
    interval_s: float = 0.25,
    ready: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
) -> PollOutcome:
    """GET ``url`` until ``ready`` says so or the timeout passes; remembers the last answer."""
    started = time.monotonic()
    attempts, status, body = 0, None, None
    with httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0)) as client:
        while True:
            attempts += 1
            try:
                response = client.get(url)
                status = response.status_code
                try:
                    body = response.json()
                except ValueError:
                    body = response.text[:500]
                if ready(response):
                    return PollOutcome(True, time.monotonic() - started, attempts, status, body)
            except httpx.HTTPError as exc:
                status, body = None, f"{type(exc).__name__}: {exc}"
            if time.monotonic() - started + interval_s > timeout_s:
                return PollOutcome(False, time.monotonic() - started, attempts, status, body)
            time.sleep(interval_s)


def failed_checks(body: Any) -> list[str]:
    """The names of failed checks in a health body, or a description of what came back instead."""
    if isinstance(body, dict) and isinstance(body.get("failed"), list):
        return [str(name) for name in body["failed"]]
    return [f"unreachable ({body})" if isinstance(body, str) else "unknown"]
