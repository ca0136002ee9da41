"""The before/after verdicts of scripts/ci/ab_compare.py (medians per side, ratio new/old, tolerance)
and scripts/ci/ab_interleaved.py (pooled percentiles, per pair of blocks beside)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.ci.ab_compare import COMPARED, cpu_per_webhook, measure_llm, resolve, summarize
from scripts.ci.ab_interleaved import Side, order, parts
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


def test_cpu_per_webhook_counts_this_runs_roles_and_its_own_database_only() -> None:
    cores = {
        "other:api": 0.4,  # the sanity profile cannot name the topology's processes: "other:<role>"
        "other:worker": 0.2,
        "postgres": 0.3,
        "postgres:walwriter": 0.1,
        "other:postgres": 0.5,  # another cluster on the machine: not this topology's
        "generator": 0.16,  # the instrument, not the product
    }
    assert cpu_per_webhook(cores, 400.0) == {
        "api_ms_per_webhook": 1.0,
        "worker_ms_per_webhook": 0.5,
        "postgres_ms_per_webhook": 1.0,
        "total_ms_per_webhook": 2.5,
    }


def test_control_a_heavier_new_side_fails_on_its_cpu_per_webhook() -> None:
    old = [cpu_per_webhook({"api": 0.4, "worker": 0.2, "postgres": 0.3}, 400.0) for _ in range(3)]
    new = [cpu_per_webhook({"api": 0.48, "worker": 0.2, "postgres": 0.3}, 400.0) for _ in range(3)]
    result = summarize({"old": old, "new": new}, 0.10, COMPARED["ingest-cpu"])
    assert result["ratio_new_to_old"]["api_ms_per_webhook"] == 1.2
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


def test_interleaved_parts_are_none_where_a_side_timed_no_unit() -> None:
    answers = [{"overhead_ms": [1.0], "units_ms": [[0.5]], "reference_ms": []}]  # one unit: not admission+settle
    assert parts(answers) == {"admission_unit_p50_ms": None, "settle_unit_p50_ms": None, "reference_unit_p50_ms": None}
    answers = [{"overhead_ms": [1.0], "units_ms": [[0.5, 0.7]], "reference_ms": [0.2]}]
    assert parts(answers) == {"admission_unit_p50_ms": 0.5, "settle_unit_p50_ms": 0.7, "reference_unit_p50_ms": 0.2}


@pytest.mark.parametrize("stray", ["a warning printed by the side's code", "[1, 2]"])
def test_a_line_outside_the_protocol_is_an_error_not_an_answer(stray: str) -> None:
    side = Side.__new__(Side)  # only the reading half: a process whose output is the stray line
    side.name = "new"
    side.process = subprocess.Popen([sys.executable, "-c", f"print({stray!r})"], stdout=subprocess.PIPE, text=True)
    with pytest.raises(RuntimeError, match="outside the protocol"):
        side.read()
    side.process.wait()


def test_the_driver_keeps_standard_output_for_its_answers() -> None:
    """A print in the side's code, or a child writing to fd 1, goes to standard error; only ``reply``
    reaches the coordinator. Control: the same writes before the channel is claimed do reach it."""
    program = (
        "import os, subprocess, sys\n"
        "from scripts.ci.ab_llm_driver import Protocol, reply\n"
        "claim = sys.argv[1] == 'claim'\n"
        "if claim: Protocol.claim_stdout()\n"
        "print('stray print')\n"
        "subprocess.run([sys.executable, '-c', 'print(\"stray child\")'], check=True)\n"
        "reply({'ready': True})\n"
    )
    for mode, expected in (
        ("claim", ['{"ready": true}']),
        ("control", ["stray print", "stray child", '{"ready": true}']),
    ):
        done = subprocess.run([sys.executable, "-c", program, mode], capture_output=True, text=True, check=True)
        assert done.stdout.splitlines() == expected, mode
