"""docker-compose.e2e.yml: valid under the Compose Specification, and no privileged DSN reaches the runtime.

No Docker engine exists here, so the file is checked statically: against the compose-spec JSON
schema (vendored by check-jsonschema) and against our own rules.
"""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml

from scripts.harness import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.e2e.yml"
RUNTIME_SERVICES = ("api", "worker")
PRIVILEGED_VARIABLES = (
    "PHASE8_ADMIN_DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "OPS_DATABASE_URL",
    "OPS_ADMIN_DATABASE_URL",
    "OPS_ADMIN_PASSWORD",
    "POSTGRES_PASSWORD",
)
CREDENTIAL = re.compile(r"://(?P<user>[^:/@]+):(?P<password>[^@]*)@")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema_text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def runtime_violations(document: dict[str, Any]) -> list[str]:
    """Our rules: runtime services get app_user DSNs from the environment, nothing privileged."""
    problems = []
    for name in RUNTIME_SERVICES:
        environment = document["services"][name].get("environment", {})
        for key, value in environment.items():
            if key in PRIVILEGED_VARIABLES:
                problems.append(f"{name}: gets {key}")
            for match in CREDENTIAL.finditer(str(value)):
                if match["user"] != "app_user":
                    problems.append(f"{name}: {key} connects as {match['user']}")
                if not match["password"].startswith("${"):
                    problems.append(f"{name}: {key} has a hardcoded password")
    return problems


def test_schema_valid(compose: dict[str, Any], validator: jsonschema.protocols.Validator) -> None:
    errors = [e.message for e in validator.iter_errors(compose)]
    assert errors == []


def test_schema_rejects_a_broken_file(compose: dict[str, Any], validator: jsonschema.protocols.Validator) -> None:
    """Negative control: the schema really constrains services."""
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["restart_policy_typo"] = "always"
    broken["services"]["worker"]["depends_on"] = 42
    assert len(list(validator.iter_errors(broken))) >= 2


def test_four_processes_are_described(compose: dict[str, Any]) -> None:
    assert {"postgres", "mock_platform", "api", "worker"} <= set(compose["services"])


def test_runtime_services_get_only_app_user_dsns(compose: dict[str, Any]) -> None:
    assert runtime_violations(compose) == []
    dsns = [v for s in RUNTIME_SERVICES for v in compose["services"][s]["environment"].values() if "://" in str(v)]
    assert len(dsns) >= 8  # every DSN was inspected, not skipped


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "DATABASE_URL",
            "postgresql+asyncpg://postgres:${POSTGRES_PASSWORD}@postgres/attribution",
            "as postgres",
        ),
        ("DATABASE_URL", "postgresql+asyncpg://app_user:hunter2@postgres/attribution", "hardcoded password"),
        (
            "MIGRATION_DATABASE_URL",
            "postgresql://app_owner:${X}@postgres/attribution",
            "gets MIGRATION_DATABASE_URL",
        ),
    ],
)
def test_rules_catch_privileged_runtime_dsns(compose: dict[str, Any], key: str, value: str, expected: str) -> None:
    """Negative control: each rule fires on the mistake it exists for."""
    mutated = copy.deepcopy(compose)
    mutated["services"]["api"]["environment"] = {**mutated["services"]["api"]["environment"], key: value}
    assert any(expected in problem for problem in runtime_violations(mutated))


def test_superuser_dsn_only_reaches_the_provision_step(compose: dict[str, Any]) -> None:
    holders = [
        name
        for name, service in compose["services"].items()
        if any("postgres:${POSTGRES_PASSWORD" in str(v) for v in (service.get("environment") or {}).values())
    ]
    assert holders == ["provision"]


def test_tunables_reach_api_and_worker_with_the_settings_default(compose: dict[str, Any]) -> None:
    """What the fault scenarios set (COMPOSE_TUNABLES) must reach both runtime services, and the file's
    fallback must be the settings' default, or compose mode would run with a value nobody chose."""
    from app.core.settings import Settings
    from scripts.topology.compose_project import COMPOSE_TUNABLES

    for name in COMPOSE_TUNABLES:
        field = next(f for f in Settings.model_fields.values() if f.validation_alias == name)
        for service in RUNTIME_SERVICES:
            value = str(compose["services"][service]["environment"][name])
            fallback = re.fullmatch(rf"\$\{{{name}:-(?P<default>[^}}]+)\}}", value)
            assert fallback, f"{service}: {name} = {value}"
            assert float(fallback["default"]) == field.default
