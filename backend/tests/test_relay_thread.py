"""The outbox relay's thread in the worker: a relay that dies says so (its heartbeat then goes stale,
which the worker probe reports; see integration/test_outbox_relay_health.py)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from app.outbox import relay_step as relay
from app.outbox.relay import Dispatch


async def _noop() -> None:
    return None


def start(monkeypatch: pytest.MonkeyPatch, body: Any) -> relay.OutboxRelay:
    monkeypatch.setattr(relay, "run_relay", body)
    monkeypatch.setattr(relay, "get_settings", lambda: SimpleNamespace())
    monkeypatch.setattr(relay, "dispose_async_engine", _noop)
    worker = SimpleNamespace(hostname="worker-test@host", app=SimpleNamespace(send_task=None))
    step = relay.OutboxRelay(worker)
    step.start(worker)
    assert step._thread is not None
    step._thread.join(timeout=10)
    return step


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
def test_a_dying_relay_thread_is_logged(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async def dies(settings: Any, stop: asyncio.Event, worker: str, publish: Any) -> None:
        raise RuntimeError("relay bug")

    with caplog.at_level(logging.CRITICAL, logger=relay.__name__):
        step = start(monkeypatch, dies)
    assert not step._thread.is_alive()  # type: ignore[union-attr]
    assert any("outbox relay thread died" in r.message and r.exc_info for r in caplog.records)


def test_a_relay_that_returns_unasked_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def returns(settings: Any, stop: asyncio.Event, worker: str, publish: Any) -> None:
        return None

    with caplog.at_level(logging.CRITICAL, logger=relay.__name__):
        start(monkeypatch, returns)
    assert any("ended without being asked to stop" in r.message for r in caplog.records)


def test_control_a_relay_stopped_on_request_is_quiet(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def waits(settings: Any, stop: asyncio.Event, worker: str, publish: Any) -> None:
        await stop.wait()

    monkeypatch.setattr(relay, "run_relay", waits)
    monkeypatch.setattr(relay, "get_settings", lambda: SimpleNamespace())
    monkeypatch.setattr(relay, "dispose_async_engine", _noop)
    worker = SimpleNamespace(hostname="worker-test@host", app=SimpleNamespace(send_task=None))
    step = relay.OutboxRelay(worker)
    with caplog.at_level(logging.INFO, logger=relay.__name__):
        step.start(worker)
        step.stop(worker)
    assert any("outbox relay started for worker-test@host" in r.message for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_relay_publishes_through_its_workers_app() -> None:
    """The relay knows nothing of Celery: the step hands it the worker's own app's send_task."""
    sent: list[tuple[str, list[Any], dict[str, Any]]] = []
    app = SimpleNamespace(send_task=lambda task, args, **options: sent.append((task, args, options)))
    publish = relay.celery_publisher(app)
    publish(Dispatch("attribution.run_job", ["t", "j", 1.0], {"queue": "attribution"}, [7]))
    assert sent == [("attribution.run_job", ["t", "j", 1.0], {"queue": "attribution"})]
