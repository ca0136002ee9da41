"""The before/after verdicts of scripts/ci/ab_compare.py (medians per side, ratio new/old, tolerance)
and scripts/ci/ab_interleaved.py (pooled percentiles, per pair of blocks beside)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.ci.ab_compare import measure_llm, resolve, summarize
from scripts.ci.ab_interleaved import order
from scripts.ci.ab_interleaved import summarize as interleaved_summary


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


def test_a_context_state_is_refused_for_a_side_whose_bench_cannot_switch(tmp_path: Path) -> None:
    """An old commit's bench has no --context: asking for one must fail, not measure the signed state."""
    bench = tmp_path / "scripts" / "bench" / "llm_boundary_bench.py"
    bench.parent.mkdir(parents=True)
    bench.write_text('parser.add_argument("--realistic-rounds")\n')
    with pytest.raises(ValueError, match="no --context option"):
        measure_llm(tmp_path, "side", "unsigned")


def test_interleaved_turns_alternate_which_side_goes_first() -> None:
    assert [order(block) for block in range(3)] == [("old", "new"), ("new", "old"), ("old", "new")]


def blocks_of(*values: float) -> list[list[float]]:
    return [[value] * 5 for value in values]


def test_interleaved_verdict_on_pooled_overheads_with_the_pairs_beside() -> None:
    result = interleaved_summary({"old": blocks_of(4, 5, 4, 5), "new": blocks_of(4.2, 5.2, 4.1, 5.3)}, 0.10)
    assert result["ratio_new_to_old"]["overhead_p50_ms"] <= 1.10
    assert result["within_tolerance"]
    pairs = result["p50_ratio_per_pair_of_blocks"]
    assert (pairs["pairs"], pairs["new_slower_in"]) == (2, 2)


def test_control_interleaved_verdict_fails_a_new_side_slower_in_every_block() -> None:
    result = interleaved_summary({"old": blocks_of(4, 5, 4, 5), "new": blocks_of(4.8, 6, 4.8, 6)}, 0.10)
    assert result["ratio_new_to_old"]["overhead_p50_ms"] == 1.2
    assert not result["within_tolerance"]


def test_a_ref_is_resolved_in_this_repository_not_in_a_reused_clone(tmp_path: Path) -> None:
    """HEAD in a clone kept from an earlier run is that clone's commit; the A/B must measure this one's."""
    source, clone = tmp_path / "source", tmp_path / "clone"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]

    def commit(repo: Path, message: str) -> str:
        subprocess.run([*git, "-C", str(repo), "commit", "-q", "--allow-empty", "-m", message], check=True)
        return subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()

    subprocess.run(["git", "init", "-q", str(source)], check=True)
    first = commit(source, "first")
    subprocess.run(["git", "clone", "-q", "--shared", str(source), str(clone)], check=True)
    second = commit(source, "second")
    assert resolve("HEAD", source) == second
    assert resolve("HEAD", clone) == first  # the control: what resolving in the clone would have measured
