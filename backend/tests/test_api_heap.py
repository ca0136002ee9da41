"""The api's startup heap is out of the cyclic collector's reach (``app.main.freeze_startup_heap``):
a full collection walks every tracked object, and that walk stalls the event loop (90-110 ms per
full collection at 800 webhooks a second, before the freeze).

Measured in a process of its own, configured as the api is: freezing is for the whole process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ENV = {
    "DATABASE_URL": "postgresql+asyncpg://app_user@localhost/unused",
    "CELERY_BROKER_URL": "sqla+postgresql://app_user@localhost/unused",
    "CELERY_RESULT_BACKEND": "db+postgresql://app_user@localhost/unused",
}
COUNT = """
import gc, json
from app.main import create_app, freeze_startup_heap
create_app()
gc.collect()
before = len(gc.get_objects())  # what a full collection walks: every tracked object
freeze_startup_heap()
print(json.dumps({"before": before, "after": len(gc.get_objects()), "frozen": gc.get_freeze_count()}))
"""


def test_after_startup_a_full_collection_has_little_left_to_walk() -> None:
    env = {**os.environ, **ENV}
    out = subprocess.run([sys.executable, "-c", COUNT], env=env, capture_output=True, text=True, check=True, timeout=60)
    counts = json.loads(out.stdout)
    assert counts["before"] > 50_000, f"the control: an imported app holds many tracked objects ({counts})"
    assert counts["after"] < counts["before"] / 20 <= counts["frozen"], (
        f"a full collection still walks too much: {counts}"
    )
