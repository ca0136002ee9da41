"""Wait until a real probe task goes through the broker to a worker and back (GET /health/worker).

python scripts/wait_for_e2e_worker.py [--base-url URL] [--timeout S]
"""

from __future__ import annotations

import sys

from scripts.health_wait import run

if __name__ == "__main__":
    sys.exit(run(__doc__ or "", "/health/worker?fresh=true", "worker", None))
