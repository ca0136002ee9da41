"""The worker probe's wait is bounded by the wall clock, not by the sum of its sleeps."""

from __future__ import annotations

import time

import pytest

from app.monitoring.readiness import ProbeTimeout, wait_ready


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


def test_relay_check_judges_the_heartbeat() -> None:
    """A relay that never beat, or beat too long ago, fails the worker probe; its last error is shown."""
    from app.monitoring.readiness import relay_check

    assert relay_check(None, 10)["ok"] is False
    fresh = relay_check({"beat_age_s": 0.4, "passes": 12, "last_error": None, "error_age_s": None}, 10)
    assert fresh == {"ok": True, "beat_age_s": 0.4, "passes": 12}
    stale = relay_check({"beat_age_s": 31.0, "passes": 12, "last_error": "ProgrammingError: x", "error_age_s": 0.2}, 10)
    assert stale["ok"] is False and stale["last_error"] == "ProgrammingError: x" and "31 s" in stale["error"]
