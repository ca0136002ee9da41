"""The before/after verdict of scripts/ci/ab_compare.py: medians per side, ratio new/old, tolerance."""

from __future__ import annotations

from scripts.ci.ab_compare import summarize


def rounds(p50: list[float], p99: list[float]) -> list[dict[str, float]]:
    return [{"p50_ms": a, "p99_ms": b, "achieved_rps": 300.0} for a, b in zip(p50, p99, strict=True)]


def test_within_tolerance_on_the_medians_not_the_best_round() -> None:
    result = summarize({"old": rounds([4, 5, 6], [20, 25, 30]), "new": rounds([3, 5.4, 9], [10, 27, 60])}, 0.10)
    assert result["ratio_new_to_old"] == {"p50_ms": 1.08, "p99_ms": 1.08}
    assert result["within_tolerance"]


def test_control_a_slower_new_side_fails() -> None:
    result = summarize({"old": rounds([4, 5, 6], [20, 25, 30]), "new": rounds([5, 6, 7], [20, 25, 30])}, 0.10)
    assert result["ratio_new_to_old"]["p50_ms"] == 1.2
    assert not result["within_tolerance"]
