"""The gate results where CI and people look: a table on the terminal, JUnit XML for CI tools, and
Markdown for a GitHub job summary.

JUnit: one ``<testsuite name="phase8">`` with one ``<testcase>`` per gate of the run (``classname``
the mode, ``time`` its seconds); a failed gate carries ``<failure message="...">`` with its error
and the log to read first; a gate that never ran (the run stopped before it) is ``<skipped>``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

JUNIT = "junit.xml"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
KEY_METRICS = {  # gate id -> metrics worth a line in the job summary
    "eg8_5_composed_ingestion_perf": (
        "target_rps",
        "achieved_rps",
        "p99_ms",
        "errors",
        "perf_composed_llm_calls",
        "max_sustainable_rps",
    ),
}


def gate_table(summary: dict[str, Any], gate_ids: list[str]) -> list[tuple[str, str, str, str]]:
    """(gate, status, seconds, error) for every gate of the run, ``not run`` for those it never reached."""
    table = []
    for gate_id in gate_ids:
        gate = summary["gates"].get(gate_id)
        if gate is None:
            table.append((gate_id, "not run", "", ""))
        else:
            table.append((gate_id, gate["status"], f"{gate['duration_s']:.1f}", gate.get("error", "")))
    return table


def terminal_table(summary: dict[str, Any], gate_ids: list[str]) -> str:
    rows = gate_table(summary, gate_ids)
    width = max(len(row[0]) for row in rows)
    lines = [f"{'gate':<{width}}  {'status':<8} {'seconds':>8}  error"]
    lines += [f"{gate:<{width}}  {status:<8} {seconds:>8}  {error[:100]}" for gate, status, seconds, error in rows]
    lines.append(f"{summary['status'].upper()} in {summary['duration_s']:.1f} s ({summary['mode']})")
    return "\n".join(lines)


def write_junit(artifact_dir: Path, summary: dict[str, Any], gate_ids: list[str]) -> Path:
    rows = gate_table(summary, gate_ids)
    if summary["status"] == "failed" and not any(row[1] == "failed" for row in rows):
        # Interrupted after its last gate, or between gates: no gate failed, yet the run did.
        rows.append(("phase8_run", "failed", "0", summary.get("error", "the run failed")))
    suite = ET.Element(
        "testsuite",
        name="phase8",
        tests=str(len(rows)),
        failures=str(sum(1 for row in rows if row[1] == "failed")),
        errors="0",
        skipped=str(sum(1 for row in rows if row[1] == "not run")),
        time=f"{summary['duration_s']:.3f}",
        timestamp=summary["started_at"],
    )
    for gate_id, status, seconds, error in rows:
        case = ET.SubElement(suite, "testcase", name=gate_id, classname=f"phase8.{summary['mode']}")
        case.set("time", seconds or "0")
        if status == "failed":
            first_log = summary["gates"].get(gate_id, {}).get("first_log", "phase8_gate_summary.json")
            failure = ET.SubElement(case, "failure", message=error or "failed", type="GateFailed")
            failure.text = f"{error}\nread first: {first_log}"
        elif status == "not run":
            ET.SubElement(case, "skipped", message="the run stopped before this gate")
    root = ET.Element("testsuites", name="phase8", tests=suite.get("tests", "0"), failures=suite.get("failures", "0"))
    root.append(suite)
    path = artifact_dir / JUNIT
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def markdown(summary: dict[str, Any], gate_ids: list[str]) -> str:
    lines = [
        f"### Phase 8 closure pack: {summary['status']} ({summary['mode']}, {summary['duration_s']:.0f} s)",
        "",
        "| gate | status | seconds | error |",
        "|---|---|---|---|",
    ]
    for gate, status, seconds, error in gate_table(summary, gate_ids):
        lines.append(f"| `{gate}` | {status} | {seconds} | {error.replace('|', '/')[:200]} |")
    for gate_id, keys in KEY_METRICS.items():
        metrics = summary["gates"].get(gate_id, {}).get("metrics", {})
        shown = [f"{key} {metrics[key]}" for key in keys if metrics.get(key) is not None]
        if shown:
            lines += ["", f"{gate_id}: " + ", ".join(shown)]
    return "\n".join(lines) + "\n"


def append_step_summary(summary: dict[str, Any], gate_ids: list[str]) -> Path | None:
    """Append the Markdown to $GITHUB_STEP_SUMMARY when a runner set it."""
    target = os.environ.get(STEP_SUMMARY_ENV)
    if not target:
        return None
    path = Path(target)
    with path.open("a") as handle:
        handle.write(markdown(summary, gate_ids))
    return path
