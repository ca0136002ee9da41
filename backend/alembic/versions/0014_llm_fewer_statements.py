"""The LLM boundary's functions in fewer statements: each one costs executor start-up and a trip
through the SPI, about 0.1 ms here, and a provider call ran about twenty.

- ``llm_route_admit`` reads the month's budget row and creates it only when it is missing (once a
  month), and counts the pressure bands in PL/pgSQL instead of a query over the thresholds.
- ``llm_admit`` reads the kill switch and the hourly shutoff in one query, holds the reservation
  and records it in one statement, and computes the cache key and looks it up in one query.
- ``llm_release`` returns a reservation in one statement.
- ``llm_settle`` writes the call's own rows (both distillation records, the cache entry and the
  finished ledger row) in one statement. Nothing else contends for those rows, so the lock order
  of the shared ones (budget period, then hourly row, then breaker) is unchanged.
- ``llm_finish`` becomes PL/pgSQL: PostgreSQL before 18 plans a SQL function's body on every call,
  PL/pgSQL keeps its plans for the session.

Steps, order, outcomes and ledger rows are as before; the boundary's tests hold for both versions.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import frozen_sql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

RELEASE = """
CREATE OR REPLACE FUNCTION llm_release(p_call uuid, p_spent numeric) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- Return a held reservation: spent (at most what was held) or released whole.
    WITH returned AS (
        UPDATE llm_budget_reservations SET status = CASE WHEN p_spent > 0 THEN 'settled' ELSE 'released' END
        WHERE call_id = p_call AND status = 'held'
        RETURNING period_start, amount_cents)
    UPDATE llm_budget_periods b
    SET reserved_cents = b.reserved_cents - r.amount_cents, spent_cents = b.spent_cents + least(p_spent, r.amount_cents)
    FROM returned r
    WHERE b.tenant_id = app_current_tenant() AND b.user_id = app_current_user() AND b.period_start = r.period_start;
END $$
"""

FINISH = """
CREATE OR REPLACE FUNCTION llm_finish(p_call uuid, p_status text, p_blocked_reason text, p_failure_reason text,
                                      p_provider_attempted boolean, p_was_cached boolean, p_response jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE llm_api_calls
    SET status = p_status, blocked_reason = p_blocked_reason, failure_reason = p_failure_reason,
        provider_attempted = p_provider_attempted, was_cached = p_was_cached, response = p_response,
        finished_at = now()
    WHERE id = p_call AND status = 'pending';
END $$
"""

# Steps 2-7, as 0009 describes them: 'duplicate', 'blocked' with a reason, 'cached' with the
# answer, or 'admitted' with the estimate held. Step 7 (the breaker) is 0009's, unchanged.
ADMIT = """
CREATE OR REPLACE FUNCTION llm_admit(
    p_request_id text, p_endpoint text, p_complexity numeric, p_tier text, p_provider text, p_model text,
    p_prompt_sha256 text, p_key_base text, p_estimate numeric, p_hourly_limit numeric,
    p_env_kill_switch boolean, p_breaker_open_s double precision,
    OUT call_id uuid, OUT verdict text, OUT blocked_reason text, OUT cached jsonb, OUT cache_key text,
    OUT breaker_clean boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_tenant uuid := app_current_tenant();
    v_user text := app_current_user();
    v_killed boolean;
    v_shut_off boolean;
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
        SELECT c.id INTO call_id FROM llm_api_calls c
        WHERE c.tenant_id = v_tenant AND c.request_id = p_request_id AND c.endpoint = p_endpoint;
        verdict := 'duplicate';
        RETURN;
    END IF;
    verdict := 'blocked';
    -- 3. kill switch and 4. hourly shutoff, read together
    SELECT p_env_kill_switch OR coalesce((SELECT k.enabled FROM llm_kill_switch k WHERE k.id = 1), false),
           coalesce((SELECT h.shut_off OR h.spent_cents >= p_hourly_limit FROM llm_hourly_shutoff h
                     WHERE h.tenant_id = v_tenant AND h.user_id = v_user AND h.hour_start = date_trunc('hour', now())),
                    false)
    INTO v_killed, v_shut_off;
    IF v_killed THEN
        blocked_reason := 'provider_kill_switch';
    ELSIF v_shut_off THEN
        blocked_reason := 'hourly_shutoff';
    ELSE
        -- 5. budget reservation: hold the estimate only if it fits (the row lock serializes callers)
        WITH held AS (
            UPDATE llm_budget_periods SET reserved_cents = reserved_cents + p_estimate
            WHERE tenant_id = v_tenant AND user_id = v_user AND period_start = date_trunc('month', now())::date
              AND spent_cents + reserved_cents + p_estimate <= limit_cents
            RETURNING period_start)
        INSERT INTO llm_budget_reservations (tenant_id, user_id, call_id, period_start, amount_cents, status)
        SELECT v_tenant, v_user, llm_admit.call_id, held.period_start, p_estimate, 'held' FROM held;
        IF NOT FOUND THEN
            blocked_reason := 'budget_exhausted';
        END IF;
    END IF;
    IF blocked_reason IS NOT NULL THEN
        PERFORM llm_finish(call_id, 'blocked', blocked_reason, NULL, false, false, NULL);
        RETURN;
    END IF;
    -- 6. cache: the key hashes in the tenant's data watermark, so new events make old answers unreachable
    SELECT k.key, c.response INTO cache_key, cached
    FROM (SELECT encode(sha256(convert_to(p_key_base || ':' || (
              SELECT coalesce(max(o.id), 0) FROM outbox o
              WHERE o.tenant_id = v_tenant AND o.kind = 'attribution_recompute'), 'UTF8')), 'hex') AS key) k
    LEFT JOIN llm_response_cache c ON c.tenant_id = v_tenant AND c.cache_key = k.key;
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

ROUTE_ADMIT = """
CREATE OR REPLACE FUNCTION llm_route_admit(
    p_request_id text, p_endpoint text, p_complexity numeric, p_monthly_limit numeric, p_pressure numeric[],
    p_tiers text[], p_models text[], p_key_bases text[], p_estimates numeric[], p_provider text,
    p_prompt_sha256 text, p_hourly_limit numeric, p_env_kill_switch boolean, p_breaker_open_s double precision,
    OUT tier text, OUT model text, OUT call_id uuid, OUT verdict text, OUT blocked_reason text, OUT cached jsonb,
    OUT cache_key text, OUT breaker_clean boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_used numeric;
    v_band integer := 1;
    v_threshold numeric;
BEGIN
    -- 1. the router's input: the share of the month's budget in use. The month's row is created the
    -- first time it is missing, without a lock (admission takes it); a row another call created
    -- meanwhile is kept, and it is as empty as ours would be.
    SELECT (b.spent_cents + b.reserved_cents) / nullif(b.limit_cents, 0) INTO v_used FROM llm_budget_periods b
    WHERE b.tenant_id = app_current_tenant() AND b.user_id = app_current_user()
      AND b.period_start = date_trunc('month', now())::date;
    IF NOT FOUND THEN
        INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents)
        VALUES (app_current_tenant(), app_current_user(), date_trunc('month', now())::date, p_monthly_limit)
        ON CONFLICT (tenant_id, user_id, period_start) DO NOTHING;
    END IF;
    FOREACH v_threshold IN ARRAY p_pressure LOOP
        IF coalesce(v_used, 0) >= v_threshold THEN
            v_band := v_band + 1;
        END IF;
    END LOOP;
    tier := p_tiers[v_band];
    model := p_models[v_band];
    -- 2-7, with the band's choices
    SELECT a.call_id, a.verdict, a.blocked_reason, a.cached, a.cache_key, a.breaker_clean
    INTO call_id, verdict, blocked_reason, cached, cache_key, breaker_clean
    FROM llm_admit(p_request_id, p_endpoint, p_complexity, tier, p_provider, model, p_prompt_sha256,
                   p_key_bases[v_band], p_estimates[v_band], p_hourly_limit, p_env_kill_switch, p_breaker_open_s) a;
END $$
"""

# Step 9 after a provider success, as 0009 describes it.
SETTLE = """
CREATE OR REPLACE FUNCTION llm_settle(
    p_call uuid, p_cost numeric, p_hourly_limit numeric, p_provider text, p_model text, p_close_breaker boolean,
    p_reasoning jsonb, p_metadata jsonb, p_cache_key text, p_response jsonb, p_prompt_tokens integer,
    p_completion_tokens integer, p_latency_ms numeric)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_tenant uuid := app_current_tenant();
    v_user text := app_current_user();
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
    -- The call's own rows: distilled, cached and finished together
    WITH distilled AS (
        INSERT INTO llm_distillation_records (tenant_id, user_id, call_id, kind, content)
        VALUES (v_tenant, v_user, p_call, 'reasoning', p_reasoning), (v_tenant, v_user, p_call, 'metadata', p_metadata)
        RETURNING id, kind),
    stored AS (
        INSERT INTO llm_response_cache (tenant_id, cache_key, response) VALUES (v_tenant, p_cache_key, p_response)
        ON CONFLICT (tenant_id, cache_key) DO NOTHING)
    UPDATE llm_api_calls
    SET status = 'succeeded', provider_attempted = true, prompt_tokens = p_prompt_tokens,
        completion_tokens = p_completion_tokens, cost_cents = p_cost, latency_ms = p_latency_ms,
        reasoning_ref = (SELECT d.id FROM distilled d WHERE d.kind = 'reasoning'),
        metadata_ref = (SELECT d.id FROM distilled d WHERE d.kind = 'metadata'),
        response = p_response, finished_at = now()
    WHERE id = p_call AND status = 'pending';
END $$
"""


def upgrade() -> None:
    for function in (RELEASE, FINISH, ADMIT, ROUTE_ADMIT, SETTLE):
        op.execute(function)


# What 0014 replaced: llm_release, llm_finish and llm_settle as 0009 created them, llm_admit as 0012
# left it, llm_route_admit as 0011 created it.
REPLACED = (
    "0014_downgrade_llm_release.sql",
    "0014_downgrade_llm_finish.sql",
    "0014_downgrade_llm_settle.sql",
    "0014_downgrade_llm_admit.sql",
    "0014_downgrade_llm_route_admit.sql",
)


def downgrade() -> None:
    for name in REPLACED:
        op.execute(frozen_sql(__file__, name))
