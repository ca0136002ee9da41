"""The complexity router: a task's score picks a tier; budget pressure pushes it down."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    CHEAP = "cheap"
    STANDARD = "standard"
    PREMIUM = "premium"


TASK_BASE_SCORE = {"route": 2, "explanation": 5, "investigation": 7, "budget_optimization": 8}
ORDER = [Tier.CHEAP, Tier.STANDARD, Tier.PREMIUM]
DOWNGRADE_AT, CHEAPEST_AT = 0.80, 0.95  # shares of the monthly budget used
PRESSURE_THRESHOLDS = (DOWNGRADE_AT, CHEAPEST_AT)


def complexity(task: str, prompt: str) -> int:
    """1-10: the task's inherent difficulty, plus one step for each size threshold the prompt crosses."""
    score = TASK_BASE_SCORE.get(task, 5) + (len(prompt) > 2_000) + (len(prompt) > 8_000)
    return max(1, min(10, score))


def tier_for(score: int) -> Tier:
    return Tier.CHEAP if score <= 3 else Tier.STANDARD if score <= 7 else Tier.PREMIUM


def under_pressure(tier: Tier, budget_used: float) -> Tier:
    """At >= 80% of the monthly budget drop one tier; at >= 95% always use the cheapest."""
    if budget_used >= CHEAPEST_AT:
        return Tier.CHEAP
    if budget_used >= DOWNGRADE_AT:
        return ORDER[max(0, ORDER.index(tier) - 1)]
    return tier


def route(task: str, prompt: str, budget_used: float) -> tuple[int, Tier]:
    score = complexity(task, prompt)
    return score, under_pressure(tier_for(score), budget_used)


def route_by_band(task: str, prompt: str) -> tuple[int, list[Tier]]:
    """The score, and the tier for each pressure band: below the first threshold, then at or above
    each one. Admission reads the budget share and picks the band (llm_route_admit)."""
    score = complexity(task, prompt)
    return score, [under_pressure(tier_for(score), used) for used in (0.0, *PRESSURE_THRESHOLDS)]
