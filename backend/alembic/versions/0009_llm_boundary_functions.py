"""The LLM boundary's two state changes as server-side functions: admit (before the provider) and
settle (after it).

Each step of the boundary (docs/architecture.md) that touches shared state is still one atomic
statement, but a statement costs a round trip and a trip through the driver, and a provider call
made about ten of them. As
functions, each phase is one call in one transaction. The statements inside run one after another,
so the rows several calls contend for are locked in one fixed order everywhere: budget period,
then hourly row, then breaker (one statement's CTEs have no defined order, and deadlocked). They
run as the caller (SECURITY INVOKER), so row-level security applies to every row they touch.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import drop_functions, install_functions

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

RELEASE = """
CREATE FUNCTION llm_release(p_call uuid, p_spent numeric) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_period date;
    v_amount numeric;
BEGIN
    -- Return a held reservation: spent (at most what was held) or released whole.
    UPDATE llm_budget_reservations SET status = CASE WHEN p_spent > 0 THEN 'settled' ELSE 'released' END
    WHERE call_id = p_call AND status = 'held'
    RETURNING period_start, amount_cents INTO v_period, v_amount;
    IF FOUND THEN
        UPDATE llm_budget_periods
        SET reserved_cents = reserved_cents - v_amount, spent_cents = spent_cents + least(p_spent, v_amount)
        WHERE tenant_id = app_current_tenant() AND user_id = app_current_user() AND period_start = v_period;
    END IF;
END $$
"""

FINISH = """
CREATE FUNCTION llm_finish(p_call uuid, p_status text, p_blocked_reason text, p_failure_reason text,
                           p_provider_attempted boolean, p_was_cached boolean, p_response jsonb)
RETURNS void LANGUAGE sql AS $$
    UPDATE llm_api_calls
    SET status = p_status, blocked_reason = p_blocked_reason, failure_reason = p_failure_reason,
        provider_attempted = p_provider_attempted, was_cached = p_was_cached, response = p_response,
        finished_at = now()
    WHERE id = p_call AND status = 'pending'
$$
"""

# Steps 2-7. Returns the claimed row's id and what happened: 'duplicate' (another delivery owns the
# claim), 'blocked' with a reason, 'cached' with the answer, or 'admitted' (go to the provider; the
# estimate is held). breaker_clean says a success has no breaker state to reset.
ADMIT = """
CREATE FUNCTION llm_admit(
    p_request_id text, p_endpoint text, p_complexity numeric, p_tier text, p_provider text, p_model text,
    p_prompt_sha256 text, p_key_base text, p_estimate numeric, p_hourly_limit numeric,
    p_env_kill_switch boolean, p_breaker_open_s double precision,
    OUT call_id uuid, OUT verdict text, OUT blocked_reason text, OUT cached jsonb, OUT cache_key text,
    OUT breaker_clean boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_tenant uuid := app_current_tenant();
    v_user text := app_current_user();
    v_hourly llm_hourly_shutoff%ROWTYPE;
    v_period date;
    v_breaker llm_breaker_state%ROWTYPE;
BEGIN
    -- 2. idempotency claim: the ledger row, once per (tenant, request id, endpoint)
    INSERT INTO llm_api_calls (tenant_id, user_id, request_id, endpoint, complexity, tier, provider, model,
                               prompt_sha256, status)
    VALUES (v_tenant, v_user, p_request_id, p_endpoint, p_complexity, p_tier, p_provider, p_model,
            p_prompt_sha256, 'pending')
    ON CONFLICT (tenant_id, request_id, endpoint) DO NOTHING
    RETURNING id INTO call_id;
    IF call_id IS NULL THEN
        SELECT c.id INTO call_id FROM llm_api_calls c WHERE c.request_id = p_request_id AND c.endpoint = p_endpoint;
        verdict := 'duplicate';
        RETURN;
    END IF;
    verdict := 'blocked';
    -- 3. kill switch
    IF p_env_kill_switch OR coalesce((SELECT enabled FROM llm_kill_switch WHERE id = 1), false) THEN
        blocked_reason := 'provider_kill_switch';
    END IF;
    -- 4. hourly shutoff
    IF blocked_reason IS NULL THEN
        SELECT * INTO v_hourly FROM llm_hourly_shutoff
        WHERE tenant_id = v_tenant AND user_id = v_user AND hour_start = date_trunc('hour', now());
        IF FOUND AND (v_hourly.shut_off OR v_hourly.spent_cents >= p_hourly_limit) THEN
            blocked_reason := 'hourly_shutoff';
        END IF;
    END IF;
    -- 5. budget reservation: hold the estimate only if it fits (the row lock serializes callers)
    IF blocked_reason IS NULL THEN
        UPDATE llm_budget_periods SET reserved_cents = reserved_cents + p_estimate
        WHERE tenant_id = v_tenant AND user_id = v_user AND period_start = date_trunc('month', now())::date
          AND spent_cents + reserved_cents + p_estimate <= limit_cents
        RETURNING period_start INTO v_period;
        IF FOUND THEN
            INSERT INTO llm_budget_reservations (tenant_id, user_id, call_id, period_start, amount_cents, status)
            VALUES (v_tenant, v_user, call_id, v_period, p_estimate, 'held');
        ELSE
            blocked_reason := 'budget_exhausted';
        END IF;
    END IF;
    IF blocked_reason IS NOT NULL THEN
        PERFORM llm_finish(call_id, 'blocked', blocked_reason, NULL, false, false, NULL);
        RETURN;
    END IF;
    -- 6. cache: the key hashes in the tenant's data watermark, so new events make old answers unreachable
    cache_key := encode(sha256(convert_to(p_key_base || ':' || (
        SELECT coalesce(max(id), 0) FROM outbox WHERE kind = 'attribution_recompute'), 'UTF8')), 'hex');
    SELECT c.response INTO cached FROM llm_response_cache c WHERE c.cache_key = llm_admit.cache_key;
    IF cached IS NOT NULL THEN
        PERFORM llm_release(call_id, 0);
        PERFORM llm_finish(call_id, 'succeeded', NULL, NULL, false, true, cached);
        verdict := 'cached';
        RETURN;
    END IF;
    -- 7. circuit breaker. Closed: go. Open and cooling down: no. Open and cooled down: exactly one
    -- half-open trial (the row lock makes it one).
    SELECT * INTO v_breaker FROM llm_breaker_state WHERE provider = p_provider AND model = p_model FOR UPDATE;
    IF NOT FOUND THEN  -- first call to this model: create the row, then lock it like any other
        INSERT INTO llm_breaker_state (provider, model) VALUES (p_provider, p_model) ON CONFLICT DO NOTHING;
        SELECT * INTO v_breaker FROM llm_breaker_state WHERE provider = p_provider AND model = p_model FOR UPDATE;
    END IF;
    breaker_clean := v_breaker.state = 'closed' AND v_breaker.consecutive_failures = 0;
    IF v_breaker.state <> 'closed' THEN
        IF coalesce(CASE WHEN v_breaker.state = 'open' THEN v_breaker.opened_at ELSE v_breaker.updated_at END,
                    '-infinity') > now() - make_interval(secs => p_breaker_open_s) THEN
            PERFORM llm_release(call_id, 0);
            blocked_reason := 'breaker_open';
            PERFORM llm_finish(call_id, 'blocked', blocked_reason, NULL, false, false, NULL);
            RETURN;
        END IF;
        UPDATE llm_breaker_state SET state = 'half_open', updated_at = now()
        WHERE provider = p_provider AND model = p_model;
    END IF;
    verdict := 'admitted';
END $$
"""

# Step 9 after a provider success: spend the reservation, count the hour, distill, cache, finish
# the row, and reset a breaker that was not clean.
SETTLE = """
CREATE FUNCTION llm_settle(
    p_call uuid, p_cost numeric, p_hourly_limit numeric, p_provider text, p_model text, p_close_breaker boolean,
    p_reasoning jsonb, p_metadata jsonb, p_cache_key text, p_response jsonb, p_prompt_tokens integer,
    p_completion_tokens integer, p_latency_ms numeric)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_tenant uuid := app_current_tenant();
    v_user text := app_current_user();
    v_reasoning uuid;
    v_metadata uuid;
BEGIN
    PERFORM llm_release(p_call, p_cost);
    INSERT INTO llm_hourly_shutoff AS h (tenant_id, user_id, hour_start, spent_cents, shut_off)
    VALUES (v_tenant, v_user, date_trunc('hour', now()), p_cost, p_cost >= p_hourly_limit)
    ON CONFLICT (tenant_id, user_id, hour_start) DO UPDATE
    SET spent_cents = h.spent_cents + p_cost, shut_off = h.shut_off OR h.spent_cents + p_cost >= p_hourly_limit;
    IF p_close_breaker THEN
        UPDATE llm_breaker_state SET state = 'closed', consecutive_failures = 0, opened_at = NULL, updated_at = now()
        WHERE provider = p_provider AND model = p_model;
    END IF;
    INSERT INTO llm_distillation_records (tenant_id, user_id, call_id, kind, content)
    VALUES (v_tenant, v_user, p_call, 'reasoning', p_reasoning) RETURNING id INTO v_reasoning;
    INSERT INTO llm_distillation_records (tenant_id, user_id, call_id, kind, content)
    VALUES (v_tenant, v_user, p_call, 'metadata', p_metadata) RETURNING id INTO v_metadata;
    INSERT INTO llm_response_cache (tenant_id, cache_key, response) VALUES (v_tenant, p_cache_key, p_response)
    ON CONFLICT (tenant_id, cache_key) DO NOTHING;
    UPDATE llm_api_calls
    SET status = 'succeeded', provider_attempted = true, prompt_tokens = p_prompt_tokens,
        completion_tokens = p_completion_tokens, cost_cents = p_cost, latency_ms = p_latency_ms,
        reasoning_ref = v_reasoning, metadata_ref = v_metadata, response = p_response, finished_at = now()
    WHERE id = p_call AND status = 'pending';
END $$
"""

# Step 9 after a provider failure: return the reservation, count the failure (tripping the breaker
# at the threshold, or at once from half-open), finish the row.
FAIL = """
CREATE FUNCTION llm_fail(p_call uuid, p_provider text, p_model text, p_reason text, p_breaker_threshold integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM llm_release(p_call, 0);
    UPDATE llm_breaker_state b  -- the row exists: llm_admit created it before admitting this call
    SET consecutive_failures = b.consecutive_failures + 1,
        state = CASE WHEN b.state = 'half_open' OR b.consecutive_failures + 1 >= p_breaker_threshold
                     THEN 'open' ELSE b.state END,
        opened_at = CASE WHEN b.state = 'half_open' OR b.consecutive_failures + 1 >= p_breaker_threshold
                         THEN now() ELSE b.opened_at END,
        updated_at = now()
    WHERE provider = p_provider AND model = p_model;
    PERFORM llm_finish(p_call, 'failed', NULL, p_reason, true, false, NULL);
END $$
"""

FUNCTIONS = {
    "llm_release(uuid, numeric)": RELEASE,
    "llm_finish(uuid, text, text, text, boolean, boolean, jsonb)": FINISH,
    "llm_admit(text, text, numeric, text, text, text, text, text, numeric, numeric, boolean, double precision)": ADMIT,
    "llm_settle(uuid, numeric, numeric, text, text, boolean, jsonb, jsonb, text, jsonb, integer, integer, numeric)": (
        SETTLE
    ),
    "llm_fail(uuid, text, text, text, integer)": FAIL,
}


def upgrade() -> None:
    install_functions(op.execute, FUNCTIONS)


def downgrade() -> None:
    drop_functions(op.execute, FUNCTIONS)
