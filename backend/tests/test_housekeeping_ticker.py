"""The housekeeping ticker sends the task to the maintenance queue once per interval, each tick expiring
after one interval; switched off, it sends nothing (the control); a broker error does not stop it."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from app.maintenance import ticker


class Broker:
    def __init__(self, fail_first: bool = False) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.fail_first = fail_first
        self.ticked = threading.Event()

    def send_task(self, name: str, **options: Any) -> None:
        if self.fail_first:
            self.fail_first = False
            raise ConnectionError("broker down")
        self.sent.append((name, options))
        if len(self.sent) >= 2:
            self.ticked.set()


def run(monkeypatch: pytest.MonkeyPatch, broker: Broker, enabled: bool, seconds: float) -> None:
    settings = SimpleNamespace(housekeeping_enabled=enabled, housekeeping_interval_s=0.05)
    monkeypatch.setattr(ticker, "get_settings", lambda: settings)
    worker = SimpleNamespace(app=broker)
    step = ticker.HousekeepingTicker(worker)
    step.start(worker)
    broker.ticked.wait(seconds)
    if not enabled:
        time.sleep(seconds)
    step.stop(worker)


def test_it_ticks_to_the_maintenance_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = Broker()
    run(monkeypatch, broker, enabled=True, seconds=5)
    assert len(broker.sent) >= 2
    assert broker.sent[0] == ("maintenance.housekeeping", {"queue": "maintenance", "expires": 0.05})


def test_control_switched_off_it_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = Broker()
    run(monkeypatch, broker, enabled=False, seconds=0.3)
    assert broker.sent == []


def test_a_broker_error_does_not_stop_the_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = Broker(fail_first=True)
    run(monkeypatch, broker, enabled=True, seconds=5)
    assert len(broker.sent) >= 2


def test_a_short_broker_retention_never_reaches_unread_task_results() -> None:
    """Task results are kept while a reader may still wait for them, however short the broker's
    retention; a longer broker retention still applies to them as is."""
    from app.core.settings import Settings
    from app.maintenance.housekeeping import RESULT_READ_WINDOW_S, Policy

    short = Policy.from_settings(Settings.model_construct(retention_broker_s=0))
    assert short.retention_s["broker_messages"] == 0
    assert short.retention_s["task_results"] >= RESULT_READ_WINDOW_S
    probe_caps = [getattr(m, "le", None) for m in Settings.model_fields["worker_probe_timeout_s"].metadata]
    assert RESULT_READ_WINDOW_S > max(cap for cap in probe_caps if cap is not None)
    long = Policy.from_settings(Settings.model_construct(retention_broker_s=7200))
    assert long.retention_s["task_results"] == 7200
