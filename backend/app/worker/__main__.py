"""Run the worker: ``python -m app.worker [--concurrency N] [--queues a,b]``.

Settings are validated first, so a bad environment exits 2 with one line. The prefork pool is
required: only it enforces hard time limits (docs/architecture.md, "Facts about our parts").
"""

from __future__ import annotations

import argparse
import sys

from app.core.settings import settings_or_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Celery worker on the attribution queues.")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--queues", default=None, help="comma-separated; default: all queues")
    parser.add_argument("--hostname", default=None, help="worker node name (default celery@<host>)")
    args = parser.parse_args(argv)
    settings = settings_or_report()
    if settings is None:
        return 2
    from app.worker.celery_app import get_celery_app
    from app.worker.queues import QUEUES

    worker_args = [
        "worker",
        "--pool=prefork",
        f"--concurrency={args.concurrency}",
        f"--queues={args.queues or ','.join(QUEUES)}",
        f"--loglevel={settings.log_level}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if args.hostname:
        worker_args.append(f"--hostname={args.hostname}")
    get_celery_app().worker_main(worker_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
