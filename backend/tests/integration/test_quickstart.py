"""The README's "First webhook in five minutes" block, run as written on a fresh topology: from
`make up` to an attributed conversion and `make down`, so the README cannot rot."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from scripts.harness import REPO_ROOT
from scripts.topology.lifecycle import RUN_DIR

pytestmark = pytest.mark.slow

BLOCK = re.compile(r"<!-- quickstart:[^>]*-->\n```bash\n(.*?)```", re.S)


def quickstart() -> str:
    found = BLOCK.findall((REPO_ROOT / "README.md").read_text())
    assert len(found) == 1, "README.md must hold exactly one quickstart block"
    return str(found[0])


def test_the_block_is_what_a_newcomer_needs() -> None:
    lines = quickstart().splitlines()
    assert lines[0] == "make up" and lines[-1] == "make down"
    assert any("scripts.ops.tenants create" in line for line in lines)
    assert any("/api/v1/attribution/results" in line for line in lines)


def test_the_readme_quickstart_runs_as_written() -> None:
    if (RUN_DIR / "topology.json").exists():
        pytest.skip("a topology named `topology` is running here (make up); the quickstart would replace it")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "E2E_"))}
    env.pop("PYTHONPATH", None)  # as a newcomer's shell: nothing but the README's commands
    try:
        result = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + quickstart()],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        results = json.loads((RUN_DIR / "results.json").read_text())
        [newsletter] = [row for row in results["channels"] if row["channel"] == "newsletter"]
        assert newsletter["revenue_cents"] == 4200 and newsletter["conversions"] == 1
        assert not (RUN_DIR / "topology.json").exists(), "make down ran"
    finally:
        subprocess.run(["make", "down"], cwd=REPO_ROOT, env=env, capture_output=True, timeout=120, check=False)
        for name in ("acme.json", "touch.json", "touch2.json", "charge.json", "results.json", "auth.header"):
            (RUN_DIR / name).unlink(missing_ok=True)
