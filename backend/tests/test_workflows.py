"""The GitHub workflows the seeds name exist, validate against the workflow schema, and run our gates."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest
import yaml

from scripts.harness import REPO_ROOT

WORKFLOWS = {
    "b07-phase8-closure-pack.yml": ("nox -s ci_subset", "b07-phase8-closure-pack"),
    "b07-p4-e2e-operational-readiness.yml": ("nox -s p4_e2e", "b07-p4-operational-readiness"),
    "ci.yml": ("bash .ci/run", "ci"),  # what CI runs here runs for a pull request too
}


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflow_is_valid_and_runs_the_gate(name: str) -> None:
    schema = json.loads(
        resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("github-workflows.json").read_text()
    )
    text = (REPO_ROOT / ".github" / "workflows" / name).read_text()
    document = yaml.safe_load(text)
    triggers = document.pop(True)  # YAML 1.1 reads the key `on` as True
    document["on"] = triggers
    assert list(jsonschema.Draft7Validator(schema).iter_errors(document)) == []
    assert set(triggers) == {"push", "pull_request", "workflow_dispatch"}
    assert triggers["push"]["branches"] == ["main"] and triggers["pull_request"]["branches"] == ["main"]
    command, artifact = WORKFLOWS[name]
    assert command in text and f"name: {artifact}" in text


@pytest.mark.parametrize("name", ["ci.yml", "b07-phase8-closure-pack.yml"])
def test_workflows_that_run_the_gates_publish_their_junit(name: str) -> None:
    """The gate table reaches the pull request as a check run, whatever the run's outcome."""
    document = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / name).read_text())
    assert document["permissions"]["checks"] == "write"
    (job,) = document["jobs"].values()
    publish = [step for step in job["steps"] if "action-junit-report" in step.get("uses", "")]
    assert len(publish) == 1
    assert publish[0]["if"] == "always()"
    assert publish[0]["with"]["report_paths"] == "artifacts/b07-phase8/junit.xml"
