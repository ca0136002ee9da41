"""One call through the boundary, in the order DESIGN §8 fixes:

router -> idempotency claim -> kill switch -> hourly shutoff -> budget reservation -> cache ->
circuit breaker -> provider call (hard timeout) -> settle.

The claim is the ledger row: it is inserted once per (tenant, request_id, endpoint) and then
finalized with whatever the outcome is, so every outcome is exactly one ``llm_api_calls`` row and a
duplicate delivery adds none. All shared state is in PostgreSQL and changed by atomic statements,
so several api and worker processes agree. The raw prompt is never stored: only its sha256.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, text

from app.core.db import tenant_transaction_sync
from app.core.tenancy import TenantContext
from app.llm.config import LLMConfig
from app.llm.providers import ChatProvider, ProviderFailure, Reply
from app.llm.router import Tier, route

ENSURE_PERIOD = text(
    "INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents) "
    "VALUES (:t, :u, date_trunc('month', now())::date, :limit) ON CONFLICT DO NOTHING"
)
BUDGET_USED = text(
    "SELECT (spent_cents + reserved_cents) / nullif(limit_cents, 0) FROM llm_budget_periods "
    "WHERE tenant_id = :t AND user_id = :u AND period_start = date_trunc('month', now())::date"
)
CLAIM = text(
    """
    INSERT INTO llm_api_calls (tenant_id, user_id, request_id, endpoint, complexity, tier, provider, model,
                               prompt_sha256, status)
    VALUES (:t, :u, :request_id, :endpoint, :complexity, :tier, :provider, :model, :sha, 'pending')
    ON CONFLICT (tenant_id, request_id, endpoint) DO NOTHING
    RETURNING id
    """
)
EXISTING = text("SELECT * FROM llm_api_calls WHERE request_id = :request_id AND endpoint = :endpoint")
FINALIZE = text(
    """
    UPDATE llm_api_calls SET status = :status, blocked_reason = :blocked_reason, failure_reason = :failure_reason,
           was_cached = :was_cached, provider_attempted = :provider_attempted, prompt_tokens = :prompt_tokens,
           completion_tokens = :completion_tokens, cost_cents = :cost_cents, latency_ms = :latency_ms,
           reasoning_ref = :reasoning_ref, metadata_ref = :metadata_ref, response = CAST(:response AS jsonb),
           finished_at = now()
    WHERE id = :call_id AND status = 'pending'
    """
)
KILL_SWITCH = text("SELECT enabled FROM llm_kill_switch WHERE id = 1")
HOURLY = text(
    "SELECT shut_off, spent_cents FROM llm_hourly_shutoff "
    "WHERE tenant_id = :t AND user_id = :u AND hour_start = date_trunc('hour', now())"
)
RESERVE = text(
    """
    UPDATE llm_budget_periods SET reserved_cents = reserved_cents + :amount
    WHERE tenant_id = :t AND user_id = :u AND period_start = date_trunc('month', now())::date
      AND spent_cents + reserved_cents + :amount <= limit_cents
    """
)
HOLD = text(
    "INSERT INTO llm_budget_reservations (tenant_id, user_id, call_id, period_start, amount_cents, status) "
    "VALUES (:t, :u, :call_id, date_trunc('month', now())::date, :amount, 'held')"
)
RELEASE = text(
    """
    WITH r AS (UPDATE llm_budget_reservations SET status = :new_status
               WHERE call_id = :call_id AND status = 'held' RETURNING period_start, amount_cents)
    UPDATE llm_budget_periods p SET reserved_cents = p.reserved_cents - r.amount_cents,
                                    spent_cents = p.spent_cents + least(:spent, r.amount_cents)
    FROM r WHERE p.tenant_id = :t AND p.user_id = :u AND p.period_start = r.period_start
    """
)
ADD_HOURLY = text(
    """
    INSERT INTO llm_hourly_shutoff (tenant_id, user_id, hour_start, spent_cents, shut_off)
    VALUES (:t, :u, date_trunc('hour', now()), :cost, :cost >= :limit)
    ON CONFLICT (tenant_id, user_id, hour_start) DO UPDATE
    SET spent_cents = llm_hourly_shutoff.spent_cents + :cost,
        shut_off = llm_hourly_shutoff.shut_off OR llm_hourly_shutoff.spent_cents + :cost >= :limit
    """
)
WATERMARK = text("SELECT coalesce(max(id), 0) FROM outbox WHERE kind = 'attribution_recompute'")
CACHE_GET = text("SELECT response FROM llm_response_cache WHERE cache_key = :key")
CACHE_PUT = text(
    "INSERT INTO llm_response_cache (tenant_id, cache_key, response) VALUES (:t, :key, CAST(:response AS jsonb)) "
    "ON CONFLICT (tenant_id, cache_key) DO NOTHING"
)
BREAKER_ENSURE = text("INSERT INTO llm_breaker_state (provider, model) VALUES (:p, :m) ON CONFLICT DO NOTHING")
BREAKER_LOCK = text(
    "SELECT state, consecutive_failures, opened_at, updated_at FROM llm_breaker_state "
    "WHERE provider = :p AND model = :m FOR UPDATE"
)
BREAKER_SET = text(
    "UPDATE llm_breaker_state SET state = :state, consecutive_failures = :failures, opened_at = :opened_at, "
    "updated_at = now() WHERE provider = :p AND model = :m"
)
DISTILL = text(
    "INSERT INTO llm_distillation_records (tenant_id, user_id, call_id, kind, content) "
    "VALUES (:t, :u, :call_id, :kind, CAST(:content AS jsonb)) RETURNING id"
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


def cache_key(endpoint: str, provider: str, model: str, prompt: str, watermark: int) -> str:
    """Same task, same model of the same provider, same prompt up to whitespace, same data: same answer."""
    normalized = " ".join(prompt.split())
    material = json.dumps([endpoint, provider, model, normalized, watermark], separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


class Boundary:
    def __init__(self, config: LLMConfig, provider: ChatProvider, engine: Engine | None = None) -> None:
        self.config = config
        self.provider = provider
        self.engine = engine

    @contextmanager
    def _tx(self, ctx: TenantContext) -> Iterator[Connection]:
        with tenant_transaction_sync(ctx, self.engine) as conn:
            yield conn

    def call(self, ctx: TenantContext, endpoint: str, request_id: str, prompt: str) -> CallOutcome:
        ids = {"t": ctx.tenant_id, "u": ctx.user_id}
        with self._tx(ctx) as conn:
            conn.execute(ENSURE_PERIOD, {**ids, "limit": self.config.monthly_budget_cents})
            used = float(conn.execute(BUDGET_USED, ids).scalar_one() or 0)
            score, tier = route(endpoint, prompt, used)  # 1. router
            model = self.config.models[tier]
            claim = conn.execute(
                CLAIM,
                {
                    **ids,
                    "request_id": request_id,
                    "endpoint": endpoint,
                    "complexity": score,
                    "tier": tier.value,
                    "provider": self.config.provider,
                    "model": model,
                    "sha": prompt_sha256(prompt),
                },
            ).first()  # 2. idempotency claim
            if claim is None:
                return self._stored(conn, request_id, endpoint)
            outcome = CallOutcome(str(claim.id), "pending", tier.value, model)
            if self.config.env_kill_switch or conn.execute(KILL_SWITCH).scalar_one_or_none():  # 3. kill switch
                return self._finish(conn, outcome, "blocked", blocked_reason="provider_kill_switch")
            hourly = conn.execute(HOURLY, ids).first()  # 4. hourly shutoff
            if hourly is not None and (hourly.shut_off or hourly.spent_cents >= self.config.hourly_limit_cents):
                return self._finish(conn, outcome, "blocked", blocked_reason="hourly_shutoff")
            estimate = self.config.estimate_cents(model, prompt)  # 5. budget reservation
            if not conn.execute(RESERVE, {**ids, "amount": estimate}).rowcount:
                return self._finish(conn, outcome, "blocked", blocked_reason="budget_exhausted")
            conn.execute(HOLD, {**ids, "call_id": claim.id, "amount": estimate})
            # Steps 6 and 7 share this transaction: one commit before the provider call, not three.
            key = cache_key(endpoint, self.config.provider, model, prompt, int(conn.execute(WATERMARK).scalar_one()))
            hit = conn.execute(CACHE_GET, {"key": key}).scalar_one_or_none()  # 6. cache
            if hit is not None:
                self._release(conn, ctx, outcome, spent=Decimal(0))
                return self._finish(conn, outcome, "succeeded", was_cached=True, text=hit["text"])
            if not self._breaker_allows(conn, model):  # 7. circuit breaker
                self._release(conn, ctx, outcome, spent=Decimal(0))
                return self._finish(conn, outcome, "blocked", blocked_reason="breaker_open")

        try:  # 8. the provider, with a hard timeout, outside any transaction
            reply = self.provider.complete(
                model, prompt, max_tokens=self.config.max_tokens, timeout_s=self.config.timeout_s
            )
        except ProviderFailure as failure:
            with self._tx(ctx) as conn:
                self._release(conn, ctx, outcome, spent=Decimal(0))
                self._breaker_record(conn, model, succeeded=False)
                return self._finish(conn, outcome, "failed", failure_reason=failure.reason, provider_attempted=True)
        return self._settle(ctx, outcome, model, tier, endpoint, key, reply)

    def _settle(
        self, ctx: TenantContext, outcome: CallOutcome, model: str, tier: Tier, endpoint: str, key: str, reply: Reply
    ) -> CallOutcome:
        ids = {"t": ctx.tenant_id, "u": ctx.user_id}
        cost = self.config.cost_cents(model, reply.prompt_tokens + reply.completion_tokens)
        with self._tx(ctx) as conn:
            self._release(conn, ctx, outcome, spent=cost)
            conn.execute(ADD_HOURLY, {**ids, "cost": cost, "limit": self.config.hourly_limit_cents})
            self._breaker_record(conn, model, succeeded=True)
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
            refs = {
                kind: conn.execute(
                    DISTILL, {**ids, "call_id": outcome.call_id, "kind": kind, "content": json.dumps(content)}
                ).scalar_one()
                for kind, content in (("reasoning", {"reasoning": reply.reasoning}), ("metadata", metadata))
            }
            conn.execute(CACHE_PUT, {"t": ctx.tenant_id, "key": key, "response": json.dumps({"text": reply.text})})
            return self._finish(
                conn,
                outcome,
                "succeeded",
                provider_attempted=True,
                text=reply.text,
                cost_cents=cost,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                latency_ms=reply.latency_ms,
                reasoning_ref=refs["reasoning"],
                metadata_ref=refs["metadata"],
            )

    # -- pieces ------------------------------------------------------------------------------

    def _finish(
        self,
        conn: Connection,
        outcome: CallOutcome,
        status: str,
        *,
        blocked_reason: str | None = None,
        failure_reason: str | None = None,
        was_cached: bool = False,
        provider_attempted: bool = False,
        text: str | None = None,
        cost_cents: Decimal = Decimal(0),
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        latency_ms: float | None = None,
        reasoning_ref: uuid.UUID | None = None,
        metadata_ref: uuid.UUID | None = None,
    ) -> CallOutcome:
        outcome.status, outcome.blocked_reason, outcome.failure_reason = status, blocked_reason, failure_reason
        outcome.was_cached, outcome.provider_attempted = was_cached, provider_attempted
        outcome.text, outcome.cost_cents = text, float(cost_cents)
        conn.execute(
            FINALIZE,
            {
                "call_id": outcome.call_id,
                "status": status,
                "blocked_reason": blocked_reason,
                "failure_reason": failure_reason,
                "was_cached": was_cached,
                "provider_attempted": provider_attempted,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "cost_cents": cost_cents,
                "latency_ms": latency_ms,
                "reasoning_ref": reasoning_ref,
                "metadata_ref": metadata_ref,
                "response": json.dumps({"text": text}) if text is not None else None,
            },
        )
        return outcome

    def _stored(self, conn: Connection, request_id: str, endpoint: str) -> CallOutcome:
        row = conn.execute(EXISTING, {"request_id": request_id, "endpoint": endpoint}).one()
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

    def _release(self, conn: Connection, ctx: TenantContext, outcome: CallOutcome, spent: Decimal) -> None:
        conn.execute(
            RELEASE,
            {
                "t": ctx.tenant_id,
                "u": ctx.user_id,
                "call_id": outcome.call_id,
                "spent": spent,
                "new_status": "settled" if spent > 0 else "released",
            },
        )

    def _breaker_allows(self, conn: Connection, model: str) -> bool:
        """Closed: go. Open and cooling down: no. Open and cooled down: exactly one half-open trial."""
        key = {"p": self.config.provider, "m": model}
        conn.execute(BREAKER_ENSURE, key)
        state = conn.execute(BREAKER_LOCK, key).one()
        if state.state == "closed":
            return True
        since = state.opened_at if state.state == "open" else state.updated_at
        cooled = since is None or (datetime.now(UTC) - since).total_seconds() >= self.config.breaker_open_s
        if cooled:
            conn.execute(
                BREAKER_SET,
                {**key, "state": "half_open", "failures": state.consecutive_failures, "opened_at": state.opened_at},
            )
        return cooled

    def _breaker_record(self, conn: Connection, model: str, *, succeeded: bool) -> None:
        key = {"p": self.config.provider, "m": model}
        conn.execute(BREAKER_ENSURE, key)
        state = conn.execute(BREAKER_LOCK, key).one()
        if succeeded:
            conn.execute(BREAKER_SET, {**key, "state": "closed", "failures": 0, "opened_at": None})
            return
        failures = state.consecutive_failures + 1
        trips = state.state == "half_open" or failures >= self.config.breaker_threshold
        conn.execute(
            BREAKER_SET,
            {
                **key,
                "state": "open" if trips else state.state,
                "failures": failures,
                "opened_at": datetime.now(UTC) if trips else state.opened_at,
            },
        )
