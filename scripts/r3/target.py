"""What every load script against a running api needs: where the api is, the runtime DSN, and one
clear line (not a traceback) when either cannot be reached."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from scripts.harness import ExitCode, env_default, fail, redact_dsn

T = TypeVar("T")


def add_target_arguments(parser: argparse.ArgumentParser, dsn_use: str) -> None:
    parser.add_argument("--base-url", default=env_default("E2E_API_BASE_URL"), help="default $E2E_API_BASE_URL")
    parser.add_argument(
        "--dsn",
        default=env_default("B07_P4_RUNTIME_DATABASE_URL", env_default("DATABASE_URL")),
        help=f"app_user DSN for {dsn_use} (default $B07_P4_RUNTIME_DATABASE_URL, then $DATABASE_URL)",
    )


def require_target(args: argparse.Namespace) -> None:
    if not args.base_url:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no API: pass --base-url or set E2E_API_BASE_URL")
    if not args.dsn:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no DSN: pass --dsn or set B07_P4_RUNTIME_DATABASE_URL")


def run_or_fail(run: Callable[[argparse.Namespace], T], args: argparse.Namespace) -> T:
    """Ctrl-C is a failed run; an unreachable api or database is an environment problem, said in one line."""
    try:
        return run(args)
    except KeyboardInterrupt:
        fail(ExitCode.GATE_FAILED, "interrupted")
    except Exception as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"{type(exc).__name__}: {redact_dsn(str(exc))[:300]}")
