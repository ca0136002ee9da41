"""The boundary's configuration, derived once from settings; prices make costs and budgets."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from app.core.settings import Settings
from app.llm.router import Tier


@dataclass(frozen=True)
class LLMConfig:
    provider: str
    models: dict[Tier, str]
    prices_cents_per_1k: dict[str, float]
    max_tokens: int
    timeout_s: float
    breaker_threshold: int
    breaker_open_s: float
    hourly_limit_cents: float
    monthly_budget_cents: float
    env_kill_switch: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMConfig:
        models = {
            Tier.CHEAP: settings.llm_model_cheap,
            Tier.STANDARD: settings.llm_model_standard,
            Tier.PREMIUM: settings.llm_model_premium,
        }
        unpriced = sorted(set(models.values()) - set(settings.llm_prices_cents_per_1k))
        if unpriced:
            raise ValueError(f"LLM_PRICES_CENTS_PER_1K has no price for {unpriced}")
        return cls(
            provider=settings.llm_provider,
            models=models,
            prices_cents_per_1k=dict(settings.llm_prices_cents_per_1k),
            max_tokens=settings.llm_max_tokens,
            timeout_s=settings.llm_timeout_s,
            breaker_threshold=settings.llm_breaker_threshold,
            breaker_open_s=settings.llm_breaker_open_s,
            hourly_limit_cents=settings.llm_hourly_limit_cents,
            monthly_budget_cents=settings.llm_monthly_budget_cents,
            env_kill_switch=settings.llm_provider_kill_switch,
        )

    def cost_cents(self, model: str, tokens: int) -> Decimal:
        price = Decimal(str(self.prices_cents_per_1k[model]))
        return (price * tokens / 1000).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)

    def estimate_cents(self, model: str, prompt: str) -> Decimal:
        """A ceiling for the reservation: UTF-8 bytes over-count prompt tokens, plus the completion cap."""
        return self.cost_cents(model, len(prompt.encode()) // 2 + 1 + self.max_tokens)
