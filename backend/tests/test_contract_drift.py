"""The committed contract and the app's routes never drift apart."""

from __future__ import annotations

import copy

import pytest

from scripts.contract import ContractValidator, drift, generate, load, operations


@pytest.fixture(scope="module")
def app_spec() -> dict:
    return generate()


def test_committed_contract_matches_the_app(app_spec: dict) -> None:
    assert drift(app_spec, load()) == []


def test_contract_covers_every_route_and_error_shape(app_spec: dict) -> None:
    ops = operations(load())
    for path in (
        "/webhooks/{platform}",
        "/api/v1/reconciliation/status",
        "/api/v1/attribution/results",
        "/health/worker",
    ):
        assert any(op[0] == path for op in ops), path
    assert ("/webhooks/{platform}", "POST", "413") in ops
    contract = load()
    problem = contract["paths"]["/webhooks/{platform}"]["post"]["responses"]["401"]["content"]
    assert list(problem) == ["application/problem+json"]


@pytest.mark.parametrize("mutation", ["drop_status", "add_path", "change_schema"])
def test_drift_is_detected(app_spec: dict, mutation: str) -> None:
    """Negative controls: each kind of divergence is reported."""
    mutated = copy.deepcopy(app_spec)
    if mutation == "drop_status":
        del mutated["paths"]["/api/v1/reconciliation/status"]["get"]["responses"]["200"]
    elif mutation == "add_path":
        mutated["paths"]["/api/v1/ghost"] = {"get": {"responses": {"200": {"description": "x"}}}}
    else:
        mutated["components"]["schemas"]["ReconciliationStatus"]["required"].remove("overall_status")
    assert drift(mutated, app_spec) != []


def test_validator_accepts_a_conforming_body_and_rejects_mutations() -> None:
    validator = ContractValidator.committed()
    good = {
        "overall_status": "reconciled",
        "platforms": [
            {"platform": "stripe", "status": "reconciled", "last_run_id": None, "finished_at": None, "discrepancies": 0}
        ],
    }
    path = "/api/v1/reconciliation/status"
    assert validator.errors("GET", path, 200, good) == []
    missing = {k: v for k, v in good.items() if k != "overall_status"}
    assert any("overall_status" in e for e in validator.errors("GET", path, 200, missing))
    assert validator.errors("GET", path, 200, {**good, "platforms": "stripe"}) != []
    with pytest.raises(LookupError):
        validator.errors("GET", path, 418, good)
