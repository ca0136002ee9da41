"""Wait until a real probe task goes through the broker to a worker and back (GET /health/worker).

python scripts/wait_for_e2e_worker.py [--base-url URL] [--timeout S]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # repo root, when run as a file

from scripts.health_wait import run

if __name__ == "__main__":
    sys.exit(run(__doc__ or "", "/health/worker?fresh=true", "worker", None))
