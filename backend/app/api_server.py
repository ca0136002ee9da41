"""Run the api: ``python -m app.api_server --host 127.0.0.1 --port 8000``.

Settings are validated before uvicorn starts, so a bad environment exits 2 with one line.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from app.core import logs
from app.core.settings import settings_or_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the attribution api with uvicorn.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args(argv)
    settings = settings_or_report()
    if settings is None:
        return 2
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        log_config=logs.dict_config(settings.log_level),  # applied in every worker process uvicorn starts
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
