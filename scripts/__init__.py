"""Operator scripts and the Phase 8 harness. Shared helpers live in ``scripts.harness``.

The harness reuses the service's own definitions (role names, settings), so importing this
package puts ``backend/`` on the path, as PYTHONPATH does for the service processes.
"""

import sys
from pathlib import Path

_BACKEND = str(Path(__file__).resolve().parents[1] / "backend")
if _BACKEND not in sys.path:
    sys.path.insert(0, _BACKEND)
