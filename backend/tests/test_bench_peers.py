"""The peer benchmark judges what it claims (``scripts/bench/peers.py``, ``nox -s bench_peers``):
the boundary passes only when its overhead is at or below LiteLLM's at every concurrency and
percentile, a failed call makes the run an invalid measurement whatever the figures say, a failed
call is counted and never timed, anything but a provider-backed boundary success is a failure, the
two direct baselines send the boundary's request, and the order of callers alternates. Each rule has
its negative control.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from app.core.tenancy import TenantContext
from app.llm.boundary import Boundary, CallOutcome
from scripts.bench import peers
from scripts.bench.llm_calls import (
    Timed,
    boundary_caller,
    direct_async_caller,
    direct_call,
    mock_config,
    timed_tasks,
    timed_threads,
)
from scripts.harness import ExitCode

NAMES = ["direct", "direct_async", "litellm", "boundary"]


def section(ours: tuple[float, float], theirs: tuple[float, float], failures: int = 0) -> dict[str, Any]:
    return {
        "overhead": {
            "boundary": {"p50_ms": ours[0], "p99_ms": ours[1]},
            "litellm": {"p50_ms": theirs[0], "p99_ms": theirs[1]},
        },
        "failures": {"direct": 0, "direct_async": 0, "litellm": 0, "boundary": failures},
    }


def judged(**by_concurrency: dict[str, Any]) -> tuple[ExitCode, dict[str, Any]]:
    result: dict[str, Any] = {"by_concurrency": {key.removeprefix("c"): value for key, value in by_concurrency.items()}}
    return peers.verdict(result), result["verdict"]


def test_the_boundary_passes_at_or_below_the_peer_everywhere() -> None:
    code, verdict = judged(c1=section((2.0, 6.0), (4.0, 7.0)), c8=section((9.0, 20.0), (9.0, 20.0)))  # ties pass
    assert code is ExitCode.PASS and verdict["met"] is True
    assert set(verdict["checks"]) == {"c1.p50_ms", "c1.p99_ms", "c8.p50_ms", "c8.p99_ms"}


@pytest.mark.parametrize("where", ["c1.p50", "c1.p99", "c8.p50", "c8.p99"])
def test_a_single_worse_figure_fails_the_target(where: str) -> None:
    """Control: the boundary above the peer at one concurrency and one percentile only is exit 1."""
    figures = {"c1": [[2.0, 6.0], [4.0, 7.0]], "c8": [[9.0, 20.0], [10.0, 21.0]]}
    concurrency, q = where.split(".")
    figures[concurrency][0][0 if q == "p50" else 1] += 5.0
    code, verdict = judged(**{c: section((o[0], o[1]), (t[0], t[1])) for c, (o, t) in figures.items()})
    assert code is ExitCode.GATE_FAILED and int(code) == 1 and verdict["met"] is False
    assert [key for key, check in verdict["checks"].items() if not check["ok"]] == [f"{where}_ms"]


def test_a_failed_call_is_an_invalid_measurement_even_when_the_figures_win() -> None:
    code, verdict = judged(c1=section((1.0, 2.0), (4.0, 7.0), failures=1))
    assert code is ExitCode.INVALID_MEASUREMENT and int(code) == 3 and verdict["met"] is False
    assert verdict["invalid_measurement"] == {"1": {"boundary": 1}}
    # Control: the same figures without the failure pass.
    assert judged(c1=section((1.0, 2.0), (4.0, 7.0)))[0] is ExitCode.PASS


def test_a_caller_left_unmeasured_fails() -> None:
    unmeasured = section((1.0, 2.0), (4.0, 7.0))
    del unmeasured["overhead"]["litellm"]
    assert judged(c1=unmeasured)[0] is ExitCode.GATE_FAILED
    assert judged()[0] is ExitCode.GATE_FAILED  # nothing measured is no pass


def balanced(orders: list[list[str]]) -> bool:
    """Each caller in each position equally often, and in each pair of rounds every two callers in both orders."""
    positions = {name: Counter(order.index(name) for order in orders) for name in NAMES}
    even = all(
        set(count.values()) == {len(orders) // len(NAMES)} and len(count) == len(NAMES) for count in positions.values()
    )
    pairs = all(
        (first.index(a) < first.index(b)) != (second.index(a) < second.index(b))
        for first, second in zip(orders[::2], orders[1::2], strict=True)
        for a in NAMES
        for b in NAMES
        if a != b
    )
    return even and pairs


def test_the_order_alternates() -> None:
    assert balanced([peers.order_for(r, NAMES) for r in range(2 * len(NAMES))])
    assert peers.order_for(1, NAMES) == NAMES[::-1]
    # Controls: the fixed order of a naive loop, and rotation without the reversed twin, are not balanced.
    assert not balanced([list(NAMES) for _ in range(2 * len(NAMES))])
    assert not balanced([[*NAMES[r % 4 :], *NAMES[: r % 4]] for r in range(2 * len(NAMES))])


def test_prompts_match_across_callers_and_request_ids_do_not() -> None:
    direct = peers.requests_for("t", "direct", 2, 8, 3)
    boundary = peers.requests_for("t", "boundary", 2, 8, 3)
    assert [p for _, p in direct] == [p for _, p in boundary]
    assert not {r for r, _ in direct} & {r for r, _ in boundary}
    assert len({p for _, p in boundary + peers.requests_for("t", "boundary", 3, 8, 3)}) == 6  # new to the cache


def test_overhead_is_the_percentile_difference_pooled_and_per_round() -> None:
    caller = [[5.0] * 90 + [50.0] * 10, [6.0] * 100]
    direct = [[1.0] * 100, [1.0] * 90 + [3.0] * 10]
    summary = peers.overhead_summary(caller, direct, "direct")
    assert summary["p50_ms_by_round"] == [4.0, 5.0] and summary["p99_ms_by_round"] == [49.0, 3.0]
    assert (summary["p50_ms"], summary["p99_ms"]) == (5.0, 47.0)  # pooled: 6 - 1 and 50 - 3
    assert summary["p99_ms_spread"] == {"min": 3.0, "median": 26.0, "max": 49.0}


def test_failed_calls_are_counted_not_timed() -> None:
    def sometimes(request_id: str, prompt: str) -> None:
        if request_id.endswith("3"):
            raise RuntimeError("the mock answered 500")

    requests = [(f"r{n}", "p") for n in range(10)]
    threads = timed_threads(sometimes, requests, 4)
    assert (len(threads.samples), threads.failures) == (9, 1) and "500" in str(threads.first_failure)

    async def async_sometimes(request_id: str, prompt: str) -> None:
        sometimes(request_id, prompt)

    loop = asyncio.new_event_loop()
    try:
        tasks = timed_tasks(loop, async_sometimes, requests, 4)
    finally:
        loop.close()
    assert (len(tasks.samples), tasks.failures) == (9, 1)
    # ... and the summary carries them to the verdict.
    measured = {8: {"boundary": [threads], "direct": [Timed([1.0] * 10)]}}
    assert peers.summarize(measured)["8"]["failures"] == {"boundary": 1, "direct": 0}


class OneAnswer(Boundary):
    """A boundary whose every call ends as ``outcome`` (the caller's judgment is under test, not the boundary)."""

    def __init__(self, outcome: CallOutcome) -> None:
        super().__init__(mock_config(), "http://127.0.0.1:9")
        self.outcome = outcome
        self.tenants: Counter[uuid.UUID] = Counter()

    def call(self, ctx: TenantContext, endpoint: str, request_id: str, prompt: str) -> CallOutcome:
        self.tenants[ctx.tenant_id] += 1
        return self.outcome


def test_only_a_provider_backed_success_counts_as_a_boundary_call() -> None:
    tenants = [TenantContext(uuid.uuid4(), "bench") for _ in range(2)]
    success = CallOutcome("id", "succeeded", "cheap", "mock-mini", provider_attempted=True)
    gate = OneAnswer(success)
    call = boundary_caller(gate, tenants)
    for n in range(4):
        call(f"r{n}", "p")
    assert sorted(gate.tenants.values()) == [2, 2]  # consecutive calls go to consecutive tenants
    # Controls: a cache hit, a block and a provider failure are each a failure, not a fast call.
    for other in (
        CallOutcome("id", "succeeded", "cheap", "mock-mini", was_cached=True),
        CallOutcome("id", "blocked", "cheap", "mock-mini", blocked_reason="kill_switch"),
        CallOutcome("id", "failed", "cheap", "mock-mini", failure_reason="http_500", provider_attempted=True),
    ):
        with pytest.raises(RuntimeError):
            boundary_caller(OneAnswer(other), tenants)("r", "p")


def test_the_summary_states_when_where_and_under_what_conditions() -> None:
    """docs/perf/ gets a summary that names its command, date, commit, CPU count and conditions."""
    measured = {
        c: {
            name: [Timed([base + c] * 50), Timed([base + c + 0.5] * 50)]
            for name, base in zip(NAMES, (1.0, 1.0, 5.0, 3.0), strict=True)
        }
        for c in (1, 8)
    }
    result = {"command": "nox -s bench_peers", **peers.run_identity(), "conditions": {"rounds": 2}}
    result["by_concurrency"] = peers.summarize(measured)
    assert peers.verdict(result) is ExitCode.PASS
    summary = peers.compact(result)
    for key in ("command", "date", "git_commit", "cpu_count", "conditions", "verdict"):
        assert summary[key], key
    assert summary["figures"]["8_callers"]["overhead_ms"]["boundary"]["p50"] == 2.0
    assert summary["figures"]["8_callers"]["overhead_ms"]["litellm"]["vs"] == "direct_async"


def test_both_direct_calls_send_the_same_request() -> None:
    """The async baseline (LiteLLM's transport) posts what the sync one (the boundary's) posts;
    control: another token cap is told apart."""
    seen: list[tuple[str, bytes]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.read()))
        return httpx.Response(200, json={"choices": [{"message": {"content": "a"}}]})

    config = mock_config()
    with httpx.Client(base_url="http://provider.test", transport=httpx.MockTransport(answer)) as client:
        direct_call(client, config, "mock-mini", "same question")

    async def send(cap: int) -> None:
        transport = httpx.MockTransport(answer)
        async with httpx.AsyncClient(base_url="http://provider.test", transport=transport) as client:
            await direct_async_caller(client, dataclasses.replace(config, max_tokens=cap), "mock-mini")(
                "r", "same question"
            )

    asyncio.run(send(config.max_tokens))
    asyncio.run(send(config.max_tokens + 1))
    assert seen[0] == seen[1] and seen[0][1] != seen[2][1]
