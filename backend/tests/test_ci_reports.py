"""The closure pack's results for CI tools and people: JUnit XML with one test case per gate (a failed
gate carries its error and first log, a gate the run never reached is skipped), the terminal table,
and the Markdown appended to $GITHUB_STEP_SUMMARY only when a runner sets it."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from scripts.phase8 import ci_reports

GATES = ["eg8_1_topology", "eg8_2_closure_pack", "eg8_3_compute_safety"]


def summary() -> dict[str, Any]:
    return {
        "status": "failed",
        "mode": "ci_subset",
        "started_at": "2026-12-01T17:00:00+00:00",
        "duration_s": 42.5,
        "gates": {
            "eg8_1_topology": {"status": "passed", "duration_s": 9.25, "first_log": "logs/eg8_1_identity.log"},
            "eg8_2_closure_pack": {
                "status": "failed",
                "duration_s": 30.0,
                "error": "pytest exit 1; see logs/pytest_p8_topology.log",
                "first_log": "logs/pytest_p8_topology.log",
            },
        },
    }


def test_junit_has_a_case_per_gate(tmp_path: Path) -> None:
    root = ET.parse(ci_reports.write_junit(tmp_path, summary(), GATES)).getroot()  # noqa: S314 - written just now
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == GATES
    assert cases["eg8_1_topology"].find("failure") is None and cases["eg8_1_topology"].get("time") == "9.2"
    failure = cases["eg8_2_closure_pack"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("pytest exit 1")
    assert "read first: logs/pytest_p8_topology.log" in (failure.text or "")
    assert cases["eg8_3_compute_safety"].find("skipped") is not None


def test_terminal_table_names_every_gate() -> None:
    table = ci_reports.terminal_table(summary(), GATES)
    assert [line.split()[:2] for line in table.splitlines()[1:4]] == [
        ["eg8_1_topology", "passed"],
        ["eg8_2_closure_pack", "failed"],
        ["eg8_3_compute_safety", "not"],
    ]
    assert table.splitlines()[-1].startswith("FAILED in 42.5 s")


def test_step_summary_only_when_a_runner_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ci_reports.STEP_SUMMARY_ENV, raising=False)
    assert ci_reports.append_step_summary(summary(), GATES) is None
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    monkeypatch.setenv(ci_reports.STEP_SUMMARY_ENV, str(target))
    ci_reports.append_step_summary(summary(), GATES)
    text = target.read_text()
    assert text.startswith("earlier step\n")  # appended, as GitHub expects
    assert "| `eg8_2_closure_pack` | failed | 30.0 | pytest exit 1" in text


def test_a_run_that_failed_without_a_failed_gate_is_red_in_junit(tmp_path: Path) -> None:
    interrupted = summary()
    interrupted["gates"]["eg8_2_closure_pack"] = {"status": "passed", "duration_s": 30.0}
    interrupted["error"] = "evidence: interrupted during evidence (SIGINT)"
    root = ET.parse(ci_reports.write_junit(tmp_path, interrupted, GATES[:2])).getroot()  # noqa: S314 - written just now
    failures = [case.get("name") for case in root.iter("testcase") if case.find("failure") is not None]
    assert failures == ["phase8_run"]


needs_xmllint = pytest.mark.skipif(
    shutil.which("xmllint") is None, reason="xmllint not installed (Debian: libxml2-utils)"
)
SCHEMA = Path(ci_reports.__file__).with_name("junit.xsd")


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["xmllint", "--noout", "--schema", str(SCHEMA), str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@needs_xmllint
def test_junit_validates_against_the_schema(tmp_path: Path) -> None:
    result = schema_check(ci_reports.write_junit(tmp_path, summary(), GATES))
    assert result.returncode == 0, result.stderr


@needs_xmllint
def test_control_the_schema_rejects_a_case_without_a_name(tmp_path: Path) -> None:
    path = ci_reports.write_junit(tmp_path, summary(), GATES)
    path.write_text(path.read_text().replace('name="eg8_1_topology" ', "", 1))
    assert schema_check(path).returncode != 0
