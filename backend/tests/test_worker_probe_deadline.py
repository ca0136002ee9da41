"""The worker probe's wait is bounded by the wall clock, not by the sum of its sleeps."""

from __future__ import annotations

import time

import pytest

from app.services.health import ProbeTimeout, wait_ready


class SlowPendingResult:
    """A result that never becomes ready and whose every poll takes as long as a slow query."""

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self.polls = 0

    def ready(self) -> bool:
        self.polls += 1
        time.sleep(self.poll_s)
        return False


class ReadyAfter:
    def __init__(self, polls: int) -> None:
        self.left = polls

    def ready(self) -> bool:
        self.left -= 1
        return self.left <= 0

    def get(self, timeout: float, propagate: bool) -> dict[str, str]:
        return {"hostname": "w1"}


def test_slow_polls_count_against_the_deadline() -> None:
    result = SlowPendingResult(poll_s=0.1)
    with pytest.raises(ProbeTimeout):
        wait_ready(result, timeout_s=0.3, interval_s=0.01)
    # Celery's own wait counts only its 0.01 s sleeps: it would poll 30 times (3 s here).
    assert result.polls <= 5


def test_a_reply_is_returned() -> None:
    assert wait_ready(ReadyAfter(3), timeout_s=5, interval_s=0.001) == {"hostname": "w1"}
