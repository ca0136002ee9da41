"""Wait until the api is ready: GET /health/ready checks the database as app_user,
migrations at head, forced RLS and the tenant GUC round trip.

python scripts/wait_for_e2e_health.py [--base-url URL] [--timeout S]
"""

from __future__ import annotations

import sys

from scripts.health_wait import run

if __name__ == "__main__":
    sys.exit(run(__doc__ or "", "/health/ready", "api", None))
