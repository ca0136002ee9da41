"""An attribution job request accepts every body its contract allows: no cross-field rule a
schema-valid body can trip on. Limits are normalised instead, as the contract describes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import ValidationError

from app.attribution.service import JobRequest
from app.core.settings import Settings

CONFIGURED = cast(Settings, SimpleNamespace(bayesian_hard_time_limit_s=300.0, bayesian_soft_time_limit_s=270.0))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"time_limit_s": 5, "soft_time_limit_s": 9}, (5.0, 5.0)),  # soft clamped to hard
        ({"time_limit_s": 5.22, "soft_time_limit_s": 0.5}, (1.0, 5.22)),  # a fraction rounds up to 1 s
        ({"time_limit_s": 10, "soft_time_limit_s": 0}, (0.0, 10.0)),  # 0: only the hard kill
        ({"time_limit_s": 10_000}, (270.0, 300.0)),  # never beyond the configured limits
        ({}, (270.0, 300.0)),
    ],
)
def test_limits_are_normalised_not_refused(body: dict[str, Any], expected: tuple[float, float]) -> None:
    assert JobRequest.model_validate({"model": "bayesian", **body}).limits(CONFIGURED) == expected


def test_integral_numbers_are_integers_as_in_json_schema() -> None:
    request = JobRequest.model_validate({"model": "bayesian", "params": {"chains": 3.0, "warmup": 2256.0}})
    assert request.params.chains == 3 and isinstance(request.params.chains, int)
    assert request.params.warmup == 2256


@pytest.mark.parametrize("chains", [3.5, "3", True])
def test_what_is_not_an_integer_is_refused(chains: object) -> None:
    with pytest.raises(ValidationError):
        JobRequest.model_validate({"model": "bayesian", "params": {"chains": chains}})
