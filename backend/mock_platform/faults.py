"""Fault modes, set at run time through the control endpoint and applied per simulated surface."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FaultMode(StrEnum):
    SUCCESS = "success"
    RATE_LIMIT = "rate_limit"  # 429 with Retry-After
    UPSTREAM_ERROR = "upstream_error"  # 500
    SLOW = "slow"  # answers after slow_ms


class Surface(StrEnum):
    PAYMENTS = "payments"
    LLM = "llm"


@dataclass
class FaultState:
    modes: dict[Surface, FaultMode] = field(default_factory=lambda: dict.fromkeys(Surface, FaultMode.SUCCESS))
    slow_ms: int = 2000
    retry_after_s: int = 1

    def set(self, mode: FaultMode, surface: Surface | None) -> None:
        for target in [surface] if surface else list(Surface):
            self.modes[target] = mode

    def snapshot(self) -> dict[str, object]:
        return {
            "modes": {surface.value: mode.value for surface, mode in self.modes.items()},
            "slow_ms": self.slow_ms,
            "retry_after_s": self.retry_after_s,
        }
