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
