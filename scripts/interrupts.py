"""Ctrl-C and SIGTERM for the scripts that own processes: ``scripts.topology up`` and the closure pack.

Three rules, so that an interrupted run always ends soon, non-zero, and leaves nothing behind:

- The first SIGINT or SIGTERM raises ``KeyboardInterrupt`` wherever the main thread is, so a
  blocking wait (a child process, a health poll) ends at once.
- The signal is also *recorded*, and ``checkpoint(step)`` at every step boundary raises again when
  one was. Python can lose the exception: raised inside a finaliser (``__del__``, a weakref
  callback) it is printed as "Exception ignored" and the program carries on. A lost exception
  then delays the stop by one step instead of cancelling it.
- Inside ``shielded()`` (teardown, writing the evidence, starting a child and recording it) signals
  are recorded only: a second Ctrl-C must not cut teardown short and leak a database. Outside it,
  every signal raises again, so a second Ctrl-C stops a run whose first exception was lost.

``HARNESS_TEST_PAUSE_AT=<step>`` makes ``checkpoint(<step>)`` say ``paused at <step>`` on stderr and
wait there for a signal. It exists so a test can interrupt every step boundary deterministically
instead of racing a signal against a fast step.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

PAUSE_ENV = "HARNESS_TEST_PAUSE_AT"
HANDLED = (signal.SIGINT, signal.SIGTERM)


class _State:
    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self.depth = 0  # nested handling_signals() blocks (a Topology inside the orchestrator)
        self.shielded = 0


_state = _State()


def received() -> signal.Signals | None:
    """The first signal this process was asked to stop by, if any."""
    return _state.received


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _state.received = _state.received or signal.Signals(signum)
    if not _state.shielded:  # in teardown, later signals are recorded only; elsewhere each one stops the run
        raise KeyboardInterrupt(_state.received.name)


@contextlib.contextmanager
def handling_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise-and-record for the block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in HANDLED} if _state.depth == 0 else {}
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if _state.depth == 0:
            _state.received = None


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Signals during the block are recorded, not raised: teardown runs to its end."""
    _state.shielded += 1
    try:
        yield
    finally:
        _state.shielded -= 1


def checkpoint(step: str) -> None:
    """A step boundary: stop here if a signal was received, even one whose exception was lost."""
    if os.environ.get(PAUSE_ENV) == step:
        print(f"[harness] paused at {step}", file=sys.stderr, flush=True)
        while _state.received is None:
            time.sleep(0.05)  # the handler raises out of this sleep
    if _state.received is not None and not _state.shielded:
        raise KeyboardInterrupt(f"{_state.received.name} before {step}")
