"""Summarise the logs of `scripts/ci/repeat.sh` runs into one small JSON for docs/perf/.

    python3 scripts/ci/summarize_runs.py WORK_DIR [WORK_DIR ...] --output docs/perf/FILE.json

Reads WORK_DIR/repeat.json (commit, target, neighbour, exit code and seconds per run) and each run's
log: the stage table `.ci/run` prints, and the JSON documents the fault scenarios and benchmarks
print (fault counts, LLM boundary overhead, worker probe, queue latency). Each figure is reported
per run and as min / median / max across runs. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STAGE = re.compile(r"^(\w[\w-]*)\s+(\d+)s\s+exit (\d+)$", re.M)
PICK = {  # document (recognised by its name or keys) -> the figures worth keeping
    "faults": ("acknowledged", "lost", "duplicated", "rate"),
    "llm_boundary": ("overhead_p50_ms", "overhead_p99_ms", "cache_hit_p99_ms", "direct_provider_p50_ms"),
    "topology": ("up_s", "probe_over_baseline_p50_ratio"),
    "queue_honesty": ("duplicate_executions",),
}


def documents(text: str) -> list[dict[str, Any]]:
    found, decoder, at = [], json.JSONDecoder(), 0
    while (start := text.find("\n{", at)) >= 0:
        try:
            document, end = decoder.raw_decode(text[start + 1 :])
        except ValueError:
            at = start + 2
            continue
        if isinstance(document, dict):
            found.append(document)
        at = start + 1 + end
    return found


def kind(document: dict[str, Any]) -> str | None:
    if "scenarios" in document and "lost" in document:
        return "faults"
    name = document.get("name")
    return name if isinstance(name, str) and name in PICK else None


def run_summary(log: Path) -> dict[str, Any]:
    text = log.read_text(errors="replace")
    summary: dict[str, Any] = {"stages_s": {name: int(s) for name, s, _ in STAGE.findall(text)}}
    for document in documents(text):
        found = kind(document)
        if found:
            summary[found] = {key: document.get(key) for key in PICK[found] if key in document}
    latency = next((d.get("enqueue_to_start_ms") for d in documents(text) if d.get("name") == "queue_honesty"), None)
    if isinstance(latency, dict):
        summary.setdefault("queue_honesty", {})["enqueue_to_start_ms"] = latency
    return summary


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work_dirs", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    batches = []
    for work_dir in args.work_dirs:
        record = json.loads((work_dir / "repeat.json").read_text())
        for run in record["runs"]:
            run.update(run_summary(Path(run["log"])))
        batches.append(record)
    runs = [run for batch in batches for run in batch["runs"]]
    figures: dict[str, Any] = {"seconds": spread([run["seconds"] for run in runs])}
    for section, keys in PICK.items():
        for key in keys:
            values = [run[section][key] for run in runs if isinstance(run.get(section, {}).get(key), int | float)]
            if values:
                figures[f"{section}.{key}"] = spread(values)
    output = {
        "made_by": "scripts/ci/repeat.sh, summarised by scripts/ci/summarize_runs.py",
        "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "passes": sum(1 for run in runs if run["exit"] == 0),
        "runs": len(runs),
        "spread": figures,
        "batches": batches,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2, sort_keys=True) + "\n")
    print(json.dumps({"passes": output["passes"], "runs": output["runs"], "output": str(args.output)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
