"""Summarise one sustained sweep (and its k6 cross-check) into a small JSON for docs/perf/.

    python -m scripts.r3.summarize_sweep ARTIFACT_DIR --command "nox -s full_physics" --output docs/perf/FILE.json

ARTIFACT_DIR is a closure pack's (r3/ingestion_sweep.json, r3/k6_crosscheck.json) or any directory
holding those two names. The summary keeps what a reader needs to judge the figure: the date, the
commit (and whether the tree had local changes), the CPU count, the command, our max sustainable
rate beside the same-run HTTP peer's and the plain-insert baseline, every step's per-step keys and
why the first failing step failed, with its per-process CPU when the run was profiled.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.harness import REPO_ROOT, read_json_object
from scripts.r3.ingestion_under_fire import STEP_KEYS

SWEEP, CROSSCHECK = "ingestion_sweep.json", "k6_crosscheck.json"


def git(*args: str) -> str:
    found = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=30)
    return found.stdout.strip()


def step_summary(step: dict[str, Any]) -> dict[str, Any]:
    keys = ("target_rps", "achieved_rps", "p50_ms", "p99_ms", *STEP_KEYS, "outbox_pending_limit", "status")
    found = {key: step.get(key) for key in keys}
    if step.get("failures"):
        found["failures"] = step["failures"]
    if "profile" in step:
        found["cores_mean"] = step["profile"].get("cores_mean")
        found["other_top_cores"] = step["profile"].get("other_top_cores")
        found["api_probe_ms"] = step["profile"].get("api_probe_ms")
    return found


def summarize(directory: Path, command: str) -> dict[str, Any]:
    r3 = directory / "r3" if (directory / "r3" / SWEEP).exists() else directory
    sweep, crosscheck = read_json_object(r3 / SWEEP), read_json_object(r3 / CROSSCHECK)
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "sweep_window": sweep.get("window"),
        "commit": git("rev-parse", "HEAD"),
        "local_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "cpu_count": os.cpu_count(),
        "command": command,
        "status": sweep.get("status"),  # invalid_measurement: the machine, not the system, was measured
        "invalid_because": sweep.get("invalid_because"),
        "step_duration_s": sweep.get("step_duration_s"),
        "max_sustainable_rps": sweep.get("max_sustainable_rps"),
        "peer_http_insert_max_rps": sweep.get("peer_http_insert_max_rps"),
        "ratio_to_http_peer": sweep.get("ratio_to_http_peer"),
        "baseline_insert_tps": sweep.get("baseline_insert_tps"),
        "steps": [step_summary(s) for s in sweep.get("steps", [])],
        "peer_steps": [step_summary(s) for s in sweep.get("peer_steps", [])],
        "k6_crosscheck": {
            key: crosscheck.get(key)
            for key in (
                "status",
                "rate",
                "duration_s",
                "null_delay_ms",
                "tolerance",
                "difference",
                "failures",
                "invalid_because",
            )
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact_dir", type=Path)
    parser.add_argument("--command", required=True, help="the command that produced the artifacts (recorded)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    summary = summarize(args.artifact_dir, args.command)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        json.dumps({k: summary[k] for k in ("max_sustainable_rps", "peer_http_insert_max_rps", "ratio_to_http_peer")})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
