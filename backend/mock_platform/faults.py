"""Fault modes, set at run time through the control endpoint and applied per simulated surface."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FaultMode(StrEnum):
    SUCCESS = "success"
    RATE_LIMIT = "rate_limit"  # 429 with Retry-After
    UPSTREAM_ERROR = "upstream_error"  # 500
    ERROR = "error"  # 500 too: the name the LLM fault modes use
    SLOW = "slow"  # answers after slow_ms


class Surface(StrEnum):
    PAYMENTS = "payments"
    LLM = "llm"


SURFACE_PREFIXES = {Surface.PAYMENTS: "/v1/balance_transactions", Surface.LLM: "/v1/chat/completions"}


@dataclass
class FaultState:
    modes: dict[Surface, FaultMode] = field(default_factory=lambda: dict.fromkeys(Surface, FaultMode.SUCCESS))
    remaining: dict[Surface, int | None] = field(default_factory=lambda: dict.fromkeys(Surface))
    requests: dict[Surface, int] = field(default_factory=lambda: dict.fromkeys(Surface, 0))
    slow_ms: int = 2000
    retry_after_s: int = 1

    def set(self, mode: FaultMode, surface: Surface | None, count: int | None) -> None:
        for target in [surface] if surface else list(Surface):
            self.modes[target] = mode
            self.remaining[target] = count

    def take(self, surface: Surface) -> FaultMode:
        """The fault for this request; a counted fault reverts to success once used up."""
        self.requests[surface] += 1
        mode = self.modes[surface]
        left = self.remaining[surface]
        if mode is not FaultMode.SUCCESS and left is not None:
            self.remaining[surface] = left - 1
            if left - 1 <= 0:
                self.modes[surface], self.remaining[surface] = FaultMode.SUCCESS, None
        return mode

    def snapshot(self) -> dict[str, object]:
        return {
            "modes": {surface.value: mode.value for surface, mode in self.modes.items()},
            "remaining": {surface.value: left for surface, left in self.remaining.items()},
            "requests": {surface.value: count for surface, count in self.requests.items()},
            "slow_ms": self.slow_ms,
            "retry_after_s": self.retry_after_s,
        }


def surface_of(path: str) -> Surface | None:
    return next((surface for surface, prefix in SURFACE_PREFIXES.items() if path.startswith(prefix)), None)
