"""The router's budget pressure read inside admission: a provider call costs two round trips.

The router needs the share of the month's budget already used, and that was a round trip of its
own before llm_admit. Now Python sends the tier it would pick in each pressure band (with each
band's model, estimate and cache-key base) and the band thresholds; ``llm_route_admit`` reads the
share, picks the band and admits with it, in the same transaction. Which tier a band means is still
decided in Python (app.llm.router), only the comparison with the thresholds happens here.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from app.core.ddl import drop_functions, install_functions

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ROUTE_ADMIT = """
CREATE FUNCTION llm_route_admit(
    p_request_id text, p_endpoint text, p_complexity numeric, p_monthly_limit numeric, p_pressure numeric[],
    p_tiers text[], p_models text[], p_key_bases text[], p_estimates numeric[], p_provider text,
    p_prompt_sha256 text, p_hourly_limit numeric, p_env_kill_switch boolean, p_breaker_open_s double precision,
    OUT tier text, OUT model text, OUT call_id uuid, OUT verdict text, OUT blocked_reason text, OUT cached jsonb,
    OUT cache_key text, OUT breaker_clean boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_used numeric;
    v_band integer;
BEGIN
    -- 1. the router's input. The month's row is created here without a lock (admission takes it);
    -- each statement reads a fresh snapshot, so a row another call just created is seen.
    INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents)
    VALUES (app_current_tenant(), app_current_user(), date_trunc('month', now())::date, p_monthly_limit)
    ON CONFLICT (tenant_id, user_id, period_start) DO NOTHING;
    SELECT (b.spent_cents + b.reserved_cents) / nullif(b.limit_cents, 0) INTO v_used FROM llm_budget_periods b
    WHERE b.tenant_id = app_current_tenant() AND b.user_id = app_current_user()
      AND b.period_start = date_trunc('month', now())::date;
    v_band := 1 + (SELECT count(*) FROM unnest(p_pressure) AS threshold WHERE coalesce(v_used, 0) >= threshold);
    tier := p_tiers[v_band];
    model := p_models[v_band];
    -- 2-7, with the band's choices
    SELECT a.call_id, a.verdict, a.blocked_reason, a.cached, a.cache_key, a.breaker_clean
    INTO call_id, verdict, blocked_reason, cached, cache_key, breaker_clean
    FROM llm_admit(p_request_id, p_endpoint, p_complexity, tier, p_provider, model, p_prompt_sha256,
                   p_key_bases[v_band], p_estimates[v_band], p_hourly_limit, p_env_kill_switch, p_breaker_open_s) a;
END $$
"""

FUNCTIONS = {
    "llm_route_admit(text, text, numeric, numeric, numeric[], text[], text[], text[], numeric[], text, text, "
    "numeric, boolean, double precision)": ROUTE_ADMIT,
}


def upgrade() -> None:
    install_functions(op.execute, FUNCTIONS)


def downgrade() -> None:
    drop_functions(op.execute, FUNCTIONS)
