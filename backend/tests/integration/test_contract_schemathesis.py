"""Schemathesis against the live api, generated from the committed contract, with every check on:
no 5xx, every response conforms to the contract, schema-invalid requests are refused, and
schema-valid requests are accepted (so the contract states every constraint the api enforces).

Two rules compare two fields, which JSON Schema cannot say; the contract names them under
``x-cross-field-rules`` and ``CROSS_FIELD_RULES`` teaches the generator each one. A rule the
contract names and this file does not know fails the run, so a new one cannot be skipped silently.
The stateful phase follows the contract's OpenAPI links from each create to its reads. Each runs
with a fixed seed and with a fresh one (printed, so a failure can be replayed).
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import Case
from schemathesis.core.parameters import ParameterLocation
from sqlalchemy import Engine

from app.tenants.service import ProvisionedTenant, create_tenant
from scripts.contract import CONTRACT
from scripts.topology import Topology

pytestmark = pytest.mark.slow

FRESH_SEED = random.SystemRandom().randrange(2**32)


def _bounds(case: Case, part: str, first: str, last: str, parse: Callable[[str], Any]) -> tuple[Any, Any] | None:
    """Both ends of a range the case carries, parsed; None when one is missing or not a value the rule
    speaks about (left to the other checks)."""
    values = getattr(case, part)
    if not isinstance(values, dict) or first not in values or last not in values:
        return None
    try:
        return parse(values[first]), parse(values[last])
    except (TypeError, ValueError):
        return None


def _reorder(
    case: Case, part: str, first: str, last: str, parse: Callable[[str], Any], *, strict: bool = False
) -> None:
    bounds = _bounds(case, part, first, last, parse)
    if bounds is None:
        return
    low, high = bounds
    values = getattr(case, part)
    if low > high or (strict and low == high):
        values[first], values[last] = values[last], values[first]
        if strict and low == high:
            values[last] = (high + timedelta(seconds=1)).isoformat()


def _within(case: Case, part: str, first: str, last: str, parse: Callable[[str], Any], span: timedelta) -> None:
    bounds = _bounds(case, part, first, last, parse)
    if bounds is not None and bounds[1] - bounds[0] > span:
        getattr(case, part)[first] = (bounds[1] - span).isoformat()


def _results_window_defaults(case: Case) -> None:
    """The results window's default takes part in its rules: an absent end is today (UTC)."""
    if isinstance(case.query, dict) and "start" in case.query and "end" not in case.query:
        case.query["end"] = datetime.now(UTC).date().isoformat()


def _results_start_not_after_end(case: Case) -> None:
    _results_window_defaults(case)
    _reorder(case, "query", "start", "end", date.fromisoformat)


def _results_window_at_most_ten_years(case: Case) -> None:
    _results_window_defaults(case)
    _within(case, "query", "start", "end", date.fromisoformat, timedelta(3660))


CROSS_FIELD_RULES: dict[str, Callable[[Case], None]] = {
    "start <= end": _results_start_not_after_end,
    "end - start <= 3660 days": _results_window_at_most_ten_years,
    "window_start < window_end": lambda case: _reorder(
        case, "body", "window_start", "window_end", datetime.fromisoformat, strict=True
    ),
    "window_end - window_start <= 93 days": lambda case: _within(
        case, "body", "window_start", "window_end", datetime.fromisoformat, timedelta(93)
    ),
}


def rules_of(case: Case) -> list[str]:
    return list(case.operation.definition.raw.get("x-cross-field-rules", []))


def satisfy_cross_field_rules(case: Case) -> None:
    for rule in rules_of(case):
        if rule not in CROSS_FIELD_RULES:
            raise AssertionError(f"the contract names a cross-field rule this test cannot satisfy: {rule!r}")
        CROSS_FIELD_RULES[rule](case)


@pytest.fixture(scope="module")
def fuzz_tenant(runtime_engine: Engine) -> ProvisionedTenant:
    """A tenant with no data: generated jobs and runs finish fast (nothing to model, no connection)."""
    with runtime_engine.begin() as conn:
        return create_tenant(conn, "schemathesis")


def headers_made_invalid(case: Case) -> bool:
    """Schemathesis made this case's headers invalid on purpose (a required one left out, say)."""
    component = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    return bool(component and component.mode.is_negative)


def call_kwargs(case: Case, topology: Topology, tenant: ProvisionedTenant) -> dict[str, Any]:
    if case.path == "/health/worker":
        case.query = {**(case.query or {}), "fresh": "false"}  # probe results are cached; keep the broker calm
    # The tenant's key goes with every call, except where the case's invalid part is its headers: added
    # there, it would put back the Authorization header the case left out, and the api would rightly
    # accept a request the check then calls schema-violating (seen with a fresh seed, 2026-12-06).
    headers = {} if headers_made_invalid(case) else {"Authorization": f"Bearer {tenant.api_key}"}
    return {"base_url": topology.api_url, "headers": headers, "timeout": 30}


schema = schemathesis.openapi.from_path(str(CONTRACT))  # the committed file; the live URL is given per call


SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def check(case: Case, topology: Topology, tenant: ProvisionedTenant) -> None:
    satisfy_cross_field_rules(case)
    case.call_and_validate(**call_kwargs(case, topology, tenant))


@schema.parametrize()
@seed(20261202)
@SETTINGS
def test_api_conforms_to_its_contract(case: Case, topology: Topology, fuzz_tenant: ProvisionedTenant) -> None:
    check(case, topology, fuzz_tenant)


@schema.parametrize()
@seed(FRESH_SEED)
@SETTINGS
def test_api_conforms_to_its_contract_fresh_seed(
    case: Case, topology: Topology, fuzz_tenant: ProvisionedTenant
) -> None:
    print(f"fresh seed {FRESH_SEED}: replay with hypothesis.seed({FRESH_SEED})")
    check(case, topology, fuzz_tenant)


@pytest.mark.parametrize("derandomize", [True, False], ids=["fixed-seed", "fresh-seed"])
def test_contract_stateful_links_reach_the_reads(
    derandomize: bool, topology: Topology, fuzz_tenant: ProvisionedTenant
) -> None:
    """Sequences of calls along the contract's links: a create, then the reads its ids lead to."""

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case) -> None:
            satisfy_cross_field_rules(case)

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return call_kwargs(case, topology, fuzz_tenant)

    Workflow.run(
        settings=settings(
            max_examples=10,
            stateful_step_count=5,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=derandomize,
        )
    )


def test_contract_links_connect_every_create_to_its_read() -> None:
    """Without links the stateful phase could only guess ids (the reads would answer 404 only): the
    state machine Schemathesis builds from the contract has a transition for each link."""
    transitions = {name for name in vars(schema.as_state_machine()) if "__" in name and not name.startswith("RANDOM")}
    for link in ("GetJob", "GetRun", "GetLLMJob", "GetInvestigation", "GetBudgetOptimization"):
        assert any(f"_{link}__" in name for name in transitions), link


def test_every_cross_field_rule_of_the_contract_is_known() -> None:
    named = {
        rule
        for result in schema.get_all_operations()
        for rule in result.ok().definition.raw.get("x-cross-field-rules", [])
    }
    assert named == set(CROSS_FIELD_RULES)


def test_control_an_unknown_rule_fails_the_run() -> None:
    operation = schema["/api/v1/reconciliation/runs"]["POST"]
    case = operation.Case(body={"platform": "stripe"})
    operation.definition.raw["x-cross-field-rules"].append("window_end is a Tuesday")
    try:
        with pytest.raises(AssertionError, match="cannot satisfy"):
            satisfy_cross_field_rules(case)
    finally:
        operation.definition.raw["x-cross-field-rules"].pop()


def test_control_the_rules_repair_what_the_api_refuses() -> None:
    runs = schema["/api/v1/reconciliation/runs"]["POST"]
    case = runs.Case(
        body={"platform": "stripe", "window_start": "2026-03-01T00:00:00+00:00", "window_end": "2026-01-01T00:00:00Z"}
    )
    satisfy_cross_field_rules(case)
    start, end = datetime.fromisoformat(case.body["window_start"]), datetime.fromisoformat(case.body["window_end"])
    assert start < end and end - start <= timedelta(93)
    same = runs.Case(
        body={"platform": "stripe", "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:00:00Z"}
    )
    satisfy_cross_field_rules(same)
    assert datetime.fromisoformat(same.body["window_start"]) < datetime.fromisoformat(same.body["window_end"])
    results = schema["/api/v1/attribution/results"]["GET"]
    inverted = results.Case(query={"start": "2030-01-01", "end": "2000-01-01"})
    satisfy_cross_field_rules(inverted)
    first, last = date.fromisoformat(inverted.query["start"]), date.fromisoformat(inverted.query["end"])
    assert first <= last and (last - first).days <= 3660


def test_control_without_the_rule_schemathesis_reports_the_rejection(
    topology: Topology, fuzz_tenant: ProvisionedTenant
) -> None:
    """The check that makes the contract state every constraint is on: generated without the rules'
    help, schema-valid windows the api refuses (a start after the default end) are found and fail."""

    @given(case=schema["/api/v1/attribution/results"]["GET"].as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def unaided(case: Case) -> None:
        case.call_and_validate(**call_kwargs(case, topology, fuzz_tenant))

    try:
        unaided()
    except (Exception, BaseExceptionGroup) as exc:  # the smallest failing example's failures
        report = "".join(traceback.format_exception(exc))
    else:
        pytest.fail("every generated window was accepted: the control found nothing to catch")
    assert "Schema-valid request rejected" in report
