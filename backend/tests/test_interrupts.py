"""scripts/interrupts.py: a signal whose exception is lost still stops the run at the next step
boundary, and teardown is never cut short by a second signal."""

from __future__ import annotations

import os
import signal
import time

import pytest

from scripts import interrupts


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would. In the suite, a session-scoped topology of the same
    pytest process holds its own handling_signals() block open for the whole session."""
    monkeypatch.setattr(interrupts, "_state", interrupts._State())


def deliver(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # the handler runs at the next bytecode boundary of the main thread


# The finaliser's dropped exception is the point of two tests, not a warning about them.
LOST_IN_FINALISER = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class Finaliser:
    """Python prints and drops an exception raised inside ``__del__``: the case that swallows Ctrl-C."""

    def __del__(self) -> None:
        deliver(signal.SIGINT)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_raises_and_is_recorded(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    with interrupts.handling_signals():
        with pytest.raises(KeyboardInterrupt):
            deliver(sig)
        assert interrupts.received() is sig
        with pytest.raises(KeyboardInterrupt, match=f"{sig.name} before next"):
            interrupts.checkpoint("next")
    assert interrupts.received() is None  # the outermost block resets
    assert signal.getsignal(sig) == before


@LOST_IN_FINALISER
def test_an_exception_lost_in_a_finaliser_still_stops_at_the_next_boundary() -> None:
    with interrupts.handling_signals():
        Finaliser()  # collected at once; its KeyboardInterrupt is printed and dropped
        assert interrupts.received() is signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            interrupts.checkpoint("after the lost exception")


@LOST_IN_FINALISER
def test_control_without_the_record_a_lost_exception_goes_unnoticed() -> None:
    """What the record is for: with Python's own handler the same finaliser loses the Ctrl-C for good."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        Finaliser()
        interrupts.checkpoint("nothing recorded")  # returns: the run would carry on as if never interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def test_teardown_is_not_cut_short() -> None:
    with interrupts.handling_signals():
        with interrupts.shielded():
            deliver(signal.SIGTERM)  # recorded, not raised
            deliver(signal.SIGINT)
            interrupts.checkpoint("inside teardown")  # shielded: no raise
        assert interrupts.received() is signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            interrupts.checkpoint("after teardown")


def test_a_second_signal_stops_a_run_whose_first_was_lost_but_never_teardown() -> None:
    with interrupts.handling_signals():
        with pytest.raises(KeyboardInterrupt):
            deliver(signal.SIGINT)  # say this one was lost in a finaliser
        with pytest.raises(KeyboardInterrupt):
            deliver(signal.SIGINT)  # the operator presses Ctrl-C again: it stops
        with interrupts.shielded():
            deliver(signal.SIGTERM)  # during teardown: recorded only
        assert interrupts.received() is signal.SIGINT
