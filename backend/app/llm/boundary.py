"""One call through the boundary, in the order DESIGN §8 fixes:

router -> idempotency claim -> kill switch -> hourly shutoff -> budget reservation -> cache ->
circuit breaker -> provider call (hard timeout) -> settle.

The claim is the ledger row: it is inserted once per (tenant, request_id, endpoint) and then
finalized with whatever the outcome is, so every outcome is exactly one ``llm_api_calls`` row and a
duplicate delivery adds none. All shared state is in PostgreSQL and changed by atomic statements,
so several api and worker processes agree. The raw prompt is never stored: only its sha256.

Round trips are the boundary's cost (about 0.4 ms each here), so steps are merged into statements
where the order allows: a provider call takes five statements before the provider (budget row,
claim, controls with the cache lookup, reservation, breaker) and two or three after it, plus two
commits.
"""

from __future__ import annotations

import hashlib
import json
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

# Creates the month's budget row on first use and reads the share already used, in one round trip and
# without locking the row (RESERVE does that). A row created concurrently by another call is not in
# this statement's snapshot: then nothing comes back, which means a fresh period with nothing used.
BUDGET_USED = text(
    """
    WITH created AS (
        INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents)
        VALUES (:t, :u, date_trunc('month', now())::date, :limit)
        ON CONFLICT (tenant_id, user_id, period_start) DO NOTHING
        RETURNING (spent_cents + reserved_cents) / nullif(limit_cents, 0) AS used)
    SELECT used FROM created
    UNION ALL
    SELECT (spent_cents + reserved_cents) / nullif(limit_cents, 0) FROM llm_budget_periods
    WHERE tenant_id = :t AND user_id = :u AND period_start = date_trunc('month', now())::date
      AND NOT EXISTS (SELECT 1 FROM created)
    """
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
# Steps 3 and 4, and step 6's cache lookup, read in one statement; the code still decides in the order
# of DESIGN §8 (kill switch, hourly shutoff, budget reservation, then the cached answer). The cache
# key hashes in the tenant's data watermark (see cache_key), so new events make old answers unreachable.
CONTROLS = text(
    """
    SELECT ks.enabled AS kill_switch, h.shut_off, h.spent_cents AS hourly_spent, w.watermark,
           c.response AS cached
    FROM (SELECT coalesce(max(id), 0) AS watermark FROM outbox WHERE kind = 'attribution_recompute') w
    LEFT JOIN llm_kill_switch ks ON ks.id = 1
    LEFT JOIN llm_hourly_shutoff h
      ON h.tenant_id = :t AND h.user_id = :u AND h.hour_start = date_trunc('hour', now())
    LEFT JOIN llm_response_cache c
      ON c.cache_key = encode(sha256(convert_to(:key_base || ':' || w.watermark, 'UTF8')), 'hex')
    """
)
# Reserve the estimate only if it fits, and record the hold, in one statement: no row back = no room.
RESERVE = text(
    """
    WITH reserved AS (
        UPDATE llm_budget_periods SET reserved_cents = reserved_cents + :amount
        WHERE tenant_id = :t AND user_id = :u AND period_start = date_trunc('month', now())::date
          AND spent_cents + reserved_cents + :amount <= limit_cents
        RETURNING period_start)
    INSERT INTO llm_budget_reservations (tenant_id, user_id, call_id, period_start, amount_cents, status)
    SELECT :t, :u, :call_id, period_start, :amount, 'held' FROM reserved
    RETURNING call_id
    """
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
# Returning the reservation and finishing the ledger row are one statement wherever both happen.
RELEASED = """
    released AS (UPDATE llm_budget_reservations SET status = :new_status
                 WHERE call_id = :call_id AND status = 'held' RETURNING period_start, amount_cents),
    budget AS (UPDATE llm_budget_periods p SET reserved_cents = p.reserved_cents - r.amount_cents,
                                               spent_cents = p.spent_cents + least(:spent, r.amount_cents)
               FROM released r WHERE p.tenant_id = :t AND p.user_id = :u AND p.period_start = r.period_start
               RETURNING 1)"""
RELEASE = text("WITH" + RELEASED + " SELECT count(*) FROM budget")
FINALIZE_SET = """
    UPDATE llm_api_calls SET status = :status, blocked_reason = :blocked_reason, failure_reason = :failure_reason,
           was_cached = :was_cached, provider_attempted = :provider_attempted, prompt_tokens = :prompt_tokens,
           completion_tokens = :completion_tokens, cost_cents = :cost_cents, latency_ms = :latency_ms,
           reasoning_ref = {reasoning_ref}, metadata_ref = {metadata_ref}, response = CAST(:response AS jsonb),
           finished_at = now()
    WHERE id = :call_id AND status = 'pending'"""
RELEASE_AND_FINALIZE = text(
    "WITH" + RELEASED + FINALIZE_SET.format(reasoning_ref="CAST(NULL AS uuid)", metadata_ref="CAST(NULL AS uuid)")
)
# Step 9 after a provider success. Rows several calls contend for are locked in one global order in
# every transaction (budget period, then hourly row, then breaker), so concurrent calls never
# deadlock; the order inside one statement's CTEs is not defined, so each of those rows gets its own
# statement: RELEASE (budget), then SETTLE (hourly row plus uncontended rows), then BREAKER_CLOSE.
SETTLE = text(
    """
    WITH hourly AS (
        INSERT INTO llm_hourly_shutoff (tenant_id, user_id, hour_start, spent_cents, shut_off)
        VALUES (:t, :u, date_trunc('hour', now()), :cost, :cost >= :limit)
        ON CONFLICT (tenant_id, user_id, hour_start) DO UPDATE
        SET spent_cents = llm_hourly_shutoff.spent_cents + :cost,
            shut_off = llm_hourly_shutoff.shut_off OR llm_hourly_shutoff.spent_cents + :cost >= :limit
        RETURNING 1),
    reasoning AS (INSERT INTO llm_distillation_records (tenant_id, user_id, call_id, kind, content)
                  VALUES (:t, :u, :call_id, 'reasoning', CAST(:reasoning AS jsonb)) RETURNING id),
    metadata AS (INSERT INTO llm_distillation_records (tenant_id, user_id, call_id, kind, content)
                 VALUES (:t, :u, :call_id, 'metadata', CAST(:metadata AS jsonb)) RETURNING id),
    cached AS (INSERT INTO llm_response_cache (tenant_id, cache_key, response)
               VALUES (:t, :key, CAST(:response AS jsonb)) ON CONFLICT (tenant_id, cache_key) DO NOTHING
               RETURNING 1)
"""
    + FINALIZE_SET.format(reasoning_ref="(SELECT id FROM reasoning)", metadata_ref="(SELECT id FROM metadata)")
)
BREAKER_CLOSE = text(
    "UPDATE llm_breaker_state SET state = 'closed', consecutive_failures = 0, opened_at = NULL, updated_at = now() "
    "WHERE provider = :provider AND model = :model"
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
    """Same task, same model of the same provider, same prompt up to whitespace..."""
    normalized = " ".join(prompt.split())
    material = json.dumps([endpoint, provider, model, normalized], separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


def cache_key(key_base: str, watermark: int) -> str:
    """...and the same data: the key CONTROLS computes in SQL, byte for byte."""
    return hashlib.sha256(f"{key_base}:{watermark}".encode()).hexdigest()


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
            used = conn.execute(BUDGET_USED, {**ids, "limit": self.config.monthly_budget_cents}).scalar()
            score, tier = route(endpoint, prompt, float(used or 0))  # 1. router
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
            key_base = cache_key_base(endpoint, self.config.provider, model, prompt)
            controls = conn.execute(CONTROLS, {**ids, "key_base": key_base}).one()
            if self.config.env_kill_switch or controls.kill_switch:  # 3. kill switch
                return self._finish(conn, outcome, "blocked", blocked_reason="provider_kill_switch")
            if controls.shut_off or (controls.hourly_spent or 0) >= self.config.hourly_limit_cents:  # 4. hourly
                return self._finish(conn, outcome, "blocked", blocked_reason="hourly_shutoff")
            estimate = self.config.estimate_cents(model, prompt)  # 5. budget reservation
            if conn.execute(RESERVE, {**ids, "call_id": claim.id, "amount": estimate}).first() is None:
                return self._finish(conn, outcome, "blocked", blocked_reason="budget_exhausted")
            # Steps 6 and 7 share this transaction: one commit before the provider call, not three.
            key = cache_key(key_base, controls.watermark)
            if controls.cached is not None:  # 6. cache (read with the controls above)
                answer = controls.cached["text"]
                return self._release_and_finish(conn, ctx, outcome, "succeeded", was_cached=True, text=answer)
            allowed, breaker_clean = self._breaker_allows(conn, model)
            if not allowed:  # 7. circuit breaker
                return self._release_and_finish(conn, ctx, outcome, "blocked", blocked_reason="breaker_open")

        try:  # 8. the provider, with a hard timeout, outside any transaction
            reply = self.provider.complete(
                model, prompt, max_tokens=self.config.max_tokens, timeout_s=self.config.timeout_s
            )
        except ProviderFailure as failure:
            with self._tx(ctx) as conn:
                self._release(conn, ctx, outcome, spent=Decimal(0))
                self._breaker_record(conn, model, succeeded=False)
                return self._finish(conn, outcome, "failed", failure_reason=failure.reason, provider_attempted=True)
        return self._settle(ctx, outcome, model, tier, endpoint, key, reply, close_breaker=not breaker_clean)

    def _settle(
        self,
        ctx: TenantContext,
        outcome: CallOutcome,
        model: str,
        tier: Tier,
        endpoint: str,
        key: str,
        reply: Reply,
        *,
        close_breaker: bool,
    ) -> CallOutcome:
        """9. Spend the reservation, count the hour, distill, cache, finish the row, close the breaker."""
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
        params = self._ledger_params(outcome, "succeeded", provider_attempted=True, text=reply.text)
        outcome.cost_cents = float(cost)
        params.update(
            t=ctx.tenant_id,
            u=ctx.user_id,
            cost=cost,
            limit=self.config.hourly_limit_cents,
            provider=self.config.provider,
            model=model,
            reasoning=json.dumps({"reasoning": reply.reasoning}),
            metadata=json.dumps(metadata),
            key=key,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            cost_cents=cost,
            latency_ms=reply.latency_ms,
        )
        with self._tx(ctx) as conn:
            self._release(conn, ctx, outcome, spent=cost)
            conn.execute(SETTLE, params)
            if close_breaker:  # a success resets a breaker that was not clean (half-open or counting failures)
                conn.execute(BREAKER_CLOSE, params)
        return outcome

    # -- pieces ------------------------------------------------------------------------------

    @staticmethod
    def _ledger_params(
        outcome: CallOutcome,
        status: str,
        *,
        blocked_reason: str | None = None,
        failure_reason: str | None = None,
        was_cached: bool = False,
        provider_attempted: bool = False,
        text: str | None = None,
    ) -> dict[str, Any]:
        """Record the outcome on ``outcome`` and return the ledger row's final values."""
        outcome.status, outcome.blocked_reason, outcome.failure_reason = status, blocked_reason, failure_reason
        outcome.was_cached, outcome.provider_attempted, outcome.text = was_cached, provider_attempted, text
        return {
            "call_id": outcome.call_id,
            "status": status,
            "blocked_reason": blocked_reason,
            "failure_reason": failure_reason,
            "was_cached": was_cached,
            "provider_attempted": provider_attempted,
            "prompt_tokens": None,
            "completion_tokens": None,
            "cost_cents": Decimal(0),
            "latency_ms": None,
            "reasoning_ref": None,
            "metadata_ref": None,
            "response": json.dumps({"text": text}) if text is not None else None,
        }

    def _finish(self, conn: Connection, outcome: CallOutcome, status: str, **fields: Any) -> CallOutcome:
        """Finish a call that holds no reservation (never made, or already returned)."""
        conn.execute(FINALIZE, self._ledger_params(outcome, status, **fields))
        return outcome

    def _release_and_finish(
        self, conn: Connection, ctx: TenantContext, outcome: CallOutcome, status: str, **fields: Any
    ) -> CallOutcome:
        """Return the whole reservation (nothing was spent) and finish the ledger row, in one statement."""
        params = self._ledger_params(outcome, status, **fields)
        params.update(t=ctx.tenant_id, u=ctx.user_id, spent=Decimal(0), new_status="released")
        conn.execute(RELEASE_AND_FINALIZE, params)
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

    @staticmethod
    def _locked_breaker(conn: Connection, key: dict[str, str]) -> Any:
        """The breaker row of this provider/model, locked until commit (created on first use)."""
        state = conn.execute(BREAKER_LOCK, key).first()
        if state is None:
            conn.execute(BREAKER_ENSURE, key)
            state = conn.execute(BREAKER_LOCK, key).one()
        return state

    def _breaker_allows(self, conn: Connection, model: str) -> tuple[bool, bool]:
        """(allowed, clean). Closed: go. Open and cooling down: no. Open and cooled down: exactly one
        half-open trial. Clean means closed with no failures counted: a success has nothing to reset."""
        key = {"p": self.config.provider, "m": model}
        state = self._locked_breaker(conn, key)
        if state.state == "closed":
            return True, state.consecutive_failures == 0
        since = state.opened_at if state.state == "open" else state.updated_at
        cooled = since is None or (datetime.now(UTC) - since).total_seconds() >= self.config.breaker_open_s
        if cooled:
            conn.execute(
                BREAKER_SET,
                {**key, "state": "half_open", "failures": state.consecutive_failures, "opened_at": state.opened_at},
            )
        return cooled, False

    def _breaker_record(self, conn: Connection, model: str, *, succeeded: bool) -> None:
        key = {"p": self.config.provider, "m": model}
        state = self._locked_breaker(conn, key)
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
