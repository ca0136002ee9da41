"""One call through the boundary, in the order docs/architecture.md, "The LLM boundary" fixes:

router -> idempotency claim -> kill switch -> hourly shutoff -> budget reservation -> cache ->
circuit breaker -> provider call (hard timeout) -> settle.

The claim is the ledger row: it is inserted once per (tenant, request_id, endpoint) and then
finalized with whatever the outcome is, so every outcome is exactly one ``llm_api_calls`` row and a
duplicate delivery adds none. All shared state is in PostgreSQL, so several api and worker
processes agree. The raw prompt is never stored: only its sha256.

Python decides what needs configuration or the prompt (the tier, the model, prices, the cache key's
base) and talks to the provider; the state changes of steps 2-7 and of step 9 run in the database
as ``llm_route_admit`` (the budget share picks the router's band, then ``llm_admit``) and
``llm_settle`` / ``llm_fail`` (backend/sql/functions), one statement and so one transaction each,
carrying the signed tenant context as its last argument (``statement_sync``: all of a step or none
of it, whatever interrupts the caller). A provider call costs two statements and two round trips
to PostgreSQL (route and admit; settle), where one statement per step cost about eleven. Those
functions are app_system's SECURITY DEFINER ones: each verifies the signed tenant context once and
names its tenant and user in every statement, where row-level security verified it again in every
policy of every statement (migrations 0026, 0030).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine

from app.core.db import pipelined, statement_sync, tenant_statement_sync
from app.core.settings import Settings
from app.core.tenancy import TenantContext
from app.llm.config import LLMConfig
from app.llm.providers import ChatProvider, ProviderFailure, Reply
from app.llm.router import PRESSURE_THRESHOLDS, Tier, route_by_band

# Arguments are cast to the function's types: the driver sends a float as double precision, which
# PostgreSQL does not turn into numeric on its own when it picks a function.
ROUTE_ADMIT = pipelined(
    "SELECT * FROM llm_route_admit(CAST(:request_id AS text), CAST(:endpoint AS text), "
    "CAST(:complexity AS numeric), CAST(:monthly_limit AS numeric), CAST(:pressure AS numeric[]), "
    "CAST(:tiers AS text[]), CAST(:models AS text[]), CAST(:key_bases AS text[]), CAST(:estimates AS numeric[]), "
    "CAST(:provider AS text), CAST(:sha AS text), CAST(:hourly_limit AS numeric), "
    "CAST(:env_kill_switch AS boolean), CAST(:breaker_open_s AS double precision), CAST(:context AS text))"
)
EXISTING = pipelined("SELECT * FROM llm_api_calls WHERE id = :call_id")
SETTLE = pipelined(
    "SELECT llm_settle(CAST(:call_id AS uuid), CAST(:cost AS numeric), CAST(:hourly_limit AS numeric), "
    "CAST(:close_breaker AS boolean), CAST(:reasoning AS jsonb), "
    "CAST(:metadata AS jsonb), CAST(:key AS text), CAST(:response AS jsonb), CAST(:prompt_tokens AS integer), "
    "CAST(:completion_tokens AS integer), CAST(:latency_ms AS numeric), CAST(:context AS text))"
)
FAIL = pipelined(
    "SELECT llm_fail(CAST(:call_id AS uuid), CAST(:reason AS text), CAST(:breaker_threshold AS integer), "
    "CAST(:context AS text))"
)


@dataclass
class CallOutcome:
    call_id: str
    status: str  # succeeded | blocked | failed | pending (another delivery is still running it)
    tier: str | None
    model: str | None
    blocked_reason: str | None = None
    failure_reason: str | None = None
    was_cached: bool = False
    provider_attempted: bool = False
    cost_cents: float = 0.0
    text: str | None = None
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prompt_sha256(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


def cache_key_base(endpoint: str, provider: str, model: str, prompt: str) -> str:
    """Same task, same model of the same provider, same prompt up to whitespace; llm_admit adds the
    tenant's data watermark, so the same question over new data is a new key."""
    normalized = " ".join(prompt.split())
    material = json.dumps([endpoint, provider, model, normalized], separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


class Boundary:
    """The provider client is made here and kept private: outside app.llm, the one way to a provider
    is ``call``, with every control in front of it (a test scans for code that reaches past it)."""

    def __init__(
        self, config: LLMConfig, provider_url: str, *, api_key: str = "", engine: Engine | None = None
    ) -> None:
        self.config = config
        self._provider = ChatProvider(config.provider, provider_url, api_key)
        self.engine = engine

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine | None = None) -> Boundary:
        if not settings.llm_url:
            raise ValueError("no LLM endpoint: set LLM_BASE_URL (or MOCK_PLATFORM_URL for the mock)")
        return cls(LLMConfig.from_settings(settings), settings.llm_url, api_key=settings.llm_api_key, engine=engine)

    def _run(self, ctx: TenantContext, statement: str, params: dict[str, Any]) -> list[Any]:
        """One step's function call, with the signed tenant context as its last argument (the function
        verifies it first): one statement, one round trip, all of it committed or none of it."""
        return statement_sync(statement, {**params, "context": ctx.token()}, self.engine)

    def call(self, ctx: TenantContext, endpoint: str, request_id: str, prompt: str) -> CallOutcome:
        score, tiers = route_by_band(endpoint, prompt)  # 1. router: a tier per budget-pressure band
        models = [self.config.models[tier] for tier in tiers]
        # Bands often share a model: hash the prompt and price it once per model, not once per band.
        key_bases = {m: cache_key_base(endpoint, self.config.provider, m, prompt) for m in set(models)}
        estimates = {m: self.config.estimate_cents(m, prompt) for m in set(models)}
        admitted = self._run(  # 1 (the band) and 2-7: claim, kill switch, hourly shutoff, reservation, cache, breaker
            ctx,
            ROUTE_ADMIT,
            {
                "request_id": request_id,
                "endpoint": endpoint,
                "complexity": score,
                "monthly_limit": self.config.monthly_budget_cents,
                "pressure": list(PRESSURE_THRESHOLDS),
                "tiers": [tier.value for tier in tiers],
                "models": models,
                "key_bases": [key_bases[m] for m in models],
                "estimates": [estimates[m] for m in models],
                "provider": self.config.provider,
                "sha": prompt_sha256(prompt),
                "hourly_limit": self.config.hourly_limit_cents,
                "env_kill_switch": self.config.env_kill_switch,
                "breaker_open_s": self.config.breaker_open_s,
            },
        )
        (admission,) = admitted  # llm_route_admit returns one row, committed: durable before the provider
        tier, model = Tier(admission.tier), str(admission.model)
        outcome = CallOutcome(str(admission.call_id), "pending", tier.value, model)
        if admission.verdict == "duplicate" and admission.call_id is None:
            # Another user of the tenant holds this request id: nothing of theirs is shown, nothing is run.
            return CallOutcome("", "blocked", tier.value, model, blocked_reason="request_id_taken", duplicate=True)
        if admission.verdict == "duplicate":
            return self._stored(ctx, admission.call_id)
        if admission.verdict == "blocked":
            return self._record(outcome, "blocked", blocked_reason=admission.blocked_reason)
        if admission.verdict == "cached":
            return self._record(outcome, "succeeded", was_cached=True, text=admission.cached["text"])

        try:  # 8. the provider, with a hard timeout, outside any transaction
            reply = self._provider.complete(
                model, prompt, max_tokens=self.config.max_tokens, timeout_s=self.config.timeout_s
            )
        except ProviderFailure as failure:
            self._run(
                ctx,
                FAIL,
                {
                    "call_id": admission.call_id,
                    "reason": failure.reason,
                    "breaker_threshold": self.config.breaker_threshold,
                },
            )
            return self._record(outcome, "failed", failure_reason=failure.reason, provider_attempted=True)
        self._settle(ctx, outcome, endpoint, tier, admission, reply)
        return outcome

    def _settle(
        self, ctx: TenantContext, outcome: CallOutcome, endpoint: str, tier: Tier, admission: Any, reply: Reply
    ) -> None:
        """9. Spend the reservation, count the hour, distill, cache, finish the row, close the breaker."""
        model = str(outcome.model)
        cost = self.config.cost_cents(model, reply.prompt_tokens + reply.completion_tokens)
        metadata = {
            "endpoint": endpoint,
            "tier": tier.value,
            "provider": self.config.provider,
            "model": model,
            "provider_model": reply.raw_model,
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "latency_ms": round(reply.latency_ms, 3),
        }
        self._run(
            ctx,
            SETTLE,
            {
                "call_id": admission.call_id,
                "cost": cost,
                "hourly_limit": self.config.hourly_limit_cents,
                "close_breaker": not admission.breaker_clean,  # half-open, or failures counted
                "reasoning": json.dumps({"reasoning": reply.reasoning}),
                "metadata": json.dumps(metadata),
                "key": admission.cache_key,
                "response": json.dumps({"text": reply.text}),
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "latency_ms": reply.latency_ms,
            },
        )
        self._record(outcome, "succeeded", provider_attempted=True, text=reply.text)
        outcome.cost_cents = float(cost)

    # -- pieces ------------------------------------------------------------------------------

    @staticmethod
    def _record(
        outcome: CallOutcome,
        status: str,
        *,
        blocked_reason: str | None = None,
        failure_reason: str | None = None,
        was_cached: bool = False,
        provider_attempted: bool = False,
        text: str | None = None,
    ) -> CallOutcome:
        """Describe the outcome the ledger row now holds."""
        outcome.status, outcome.blocked_reason, outcome.failure_reason = status, blocked_reason, failure_reason
        outcome.was_cached, outcome.provider_attempted, outcome.text = was_cached, provider_attempted, text
        return outcome

    def _stored(self, ctx: TenantContext, call_id: Any) -> CallOutcome:
        """A duplicate delivery: the outcome as the ledger row holds it (pending while the first runs)."""
        # A plain read under row-level security: the context is set beside it, not passed to it. The
        # caller's own row: llm_admit_for returns no id for another user's.
        (row,) = tenant_statement_sync(ctx, EXISTING, {"call_id": call_id}, self.engine)
        return CallOutcome(
            str(row.id),
            row.status,
            row.tier,
            row.model,
            row.blocked_reason,
            row.failure_reason,
            row.was_cached,
            row.provider_attempted,
            float(row.cost_cents),
            (row.response or {}).get("text"),
            duplicate=True,
        )
