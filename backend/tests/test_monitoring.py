"""The alert rules and the dashboard in docs/ops/monitoring: promtool accepts and unit-tests the rules,
and every metric a rule or a panel names is one a live /metrics exports (a renamed metric would
otherwise leave an alert that can never fire)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from scripts.harness import REPO_ROOT
from scripts.topology import Topology

MONITORING = REPO_ROOT / "docs" / "ops" / "monitoring"
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "le",
}  # fmt: skip
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian: prometheus)"
)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are neither functions, keywords, label
    names in matchers or groupings, nor durations."""
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"(?<![\w.])\d+(\.\d+)?([eE][+-]?\d+)?(?![\w.])", "", expr)  # numbers, 1e-9 included
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range durations
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    names = set()
    for match in NAME.finditer(expr):
        rest = expr[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in PROMQL_WORDS or re.fullmatch(r"\d+\w*", match.group()):
            continue
        names.add(match.group())
    return names


SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}


def exported_names(exposition: str) -> set[str]:
    """Every series name the exposition declares, samples or not: a family with no samples yet (no
    breaker has been used) still declares its name and type."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names |= {name, *(name + suffix for suffix in SAMPLE_SUFFIXES.get(kind, ()))}
        elif line and not line.startswith("#"):
            names.add(line.split("{")[0].split(" ")[0])
    return names


def rule_expressions() -> list[str]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def panel_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_metric_names_are_read_from_expressions() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{status=~"5.."}[5m]))) > 0.25'
    )
    assert metric_names(expr) == {"http_request_duration_seconds_bucket"}
    assert metric_names("max by (provider, model) (llm_breaker_open) == 1") == {"llm_breaker_open"}
    assert metric_names("sum(rate(a_total[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9) > 0.05") == {
        "a_total",
        "b_total",
    }


def test_control_a_renamed_metric_is_reported() -> None:
    exposition = '# TYPE llm_calls counter\nllm_calls_total{status="ok"} 3.0\n# TYPE llm_breaker_open gauge\n'
    exported = exported_names(exposition)
    assert {"llm_calls_total", "llm_breaker_open"} <= exported
    assert metric_names("sum(rate(llm_call_total[5m]))") - exported == {"llm_call_total"}


@needs_promtool
def test_promtool_accepts_and_unit_tests_the_rules() -> None:
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        result = subprocess.run(
            ["promtool", *command], cwd=MONITORING, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_control_promtool_test_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: the kill-switch alert expected at 1m (it only fires after its `for`)."""
    broken = (MONITORING / "alerts.test.yml").read_text().replace("eval_time: 3m", "eval_time: 1m", 1)
    shutil.copy(MONITORING / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "alerts.test.yml").write_text(broken)
    result = subprocess.run(
        ["promtool", "test", "rules", "alerts.test.yml"], cwd=tmp_path, capture_output=True, timeout=60, check=False
    )
    assert result.returncode != 0


@pytest.mark.integration
def test_every_metric_in_rules_and_dashboard_is_exported(topology: Topology) -> None:
    exported = exported_names(httpx.get(f"{topology.api_url}/metrics", timeout=30).text)
    used = {name for expr in rule_expressions() + panel_expressions() for name in metric_names(expr)}
    assert len(used) >= 12, f"the scan found too few names to mean anything: {sorted(used)}"
    assert sorted(used - exported) == []
