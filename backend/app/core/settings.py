"""One source of truth for runtime configuration, read from the environment.

Variable names are the ones operators know from the runbooks (docs/ops/roles.md).
"""

from __future__ import annotations

import sys
from functools import lru_cache

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from app.core.sealing import SealingError, key_ring


class ConfigurationError(SystemExit):
    """A setting is missing or malformed; carries a one-line message naming it."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    database_url: str = Field(validation_alias="DATABASE_URL")
    runtime_sync_database_url: str | None = Field(default=None, validation_alias="B07_P4_RUNTIME_DATABASE_URL")
    celery_broker_url: str = Field(validation_alias="CELERY_BROKER_URL")
    celery_result_backend: str = Field(validation_alias="CELERY_RESULT_BACKEND")
    mock_platform_url: str | None = Field(default=None, validation_alias="MOCK_PLATFORM_URL")
    payments_api_base_url: str | None = Field(default=None, validation_alias="PAYMENTS_API_BASE_URL")
    reconciliation_page_size: int = Field(default=100, ge=1, le=100, validation_alias="RECONCILIATION_PAGE_SIZE")
    reconciliation_max_retries: int = Field(default=4, ge=0, le=20, validation_alias="RECONCILIATION_MAX_RETRIES")
    reconciliation_max_retry_after_s: float = Field(
        default=30, ge=0, le=600, validation_alias="RECONCILIATION_MAX_RETRY_AFTER_S"
    )

    # Broker tuning: kombu's SQL transport polls; with wake-ups on, a publish also NOTIFYs and waiting
    # consumers LISTEN, so a task need not wait out the interval (app.worker.broker; queue latency of
    # both ways: scripts/bench/queue_honesty.py). Unset, the interval is 1 s with wake-ups (only a
    # notification lost while the listener reconnects waits for it; each pass over the queues costs the
    # worker and PostgreSQL CPU whether or not there is work) and 0.05 s without them.
    broker_polling_interval: float | None = Field(
        default=None, gt=0, le=5, validation_alias="BROKER_POLLING_INTERVAL_S"
    )
    broker_wakeups: bool = Field(default=True, validation_alias="BROKER_WAKEUPS")
    worker_probe_timeout_s: float = Field(default=5.0, gt=0, le=60, validation_alias="WORKER_PROBE_TIMEOUT_S")
    worker_probe_cache_s: float = Field(default=2.0, ge=0, le=60, validation_alias="WORKER_PROBE_CACHE_S")
    db_pool_size: int = Field(default=10, ge=1, le=200, validation_alias="DB_POOL_SIZE")
    # The api's deadline for reaching the database and for one statement: past it a request answers
    # 503 with Retry-After instead of waiting for a link that may never come back (a partition).
    db_call_timeout_s: float = Field(default=3.0, gt=0, le=120, validation_alias="DB_CALL_TIMEOUT_S")
    # Lifetime of a signed tenant context: longer than any transaction plus the clock skew between api
    # and database hosts. app.core.tenancy reads the variable itself; declared here to fail fast on a bad one.
    tenant_context_ttl_s: float = Field(default=300, ge=30, le=3600, validation_alias="TENANT_CONTEXT_TTL_S")
    webhook_max_body_bytes: int = Field(
        default=65_536, ge=1024, le=10_485_760, validation_alias="WEBHOOK_MAX_BODY_BYTES"
    )
    webhook_tolerance_s: int = Field(default=300, ge=1, le=3600, validation_alias="WEBHOOK_TOLERANCE_S")
    # Longest a tenant's webhook secrets stay in the intake's cache; a change reaches it sooner, by
    # notification (app.webhooks.secret_cache). 0: read them from the database for every webhook.
    webhook_secret_cache_s: float = Field(default=60, ge=0, le=3600, validation_alias="WEBHOOK_SECRET_CACHE_S")
    # Seconds a webhook body may go without new data before the intake answers 408 and hangs up.
    webhook_body_timeout_s: float = Field(default=10.0, gt=0, le=300, validation_alias="WEBHOOK_BODY_TIMEOUT_S")
    outbox_relay_interval_s: float = Field(default=0.2, gt=0, le=60, validation_alias="OUTBOX_RELAY_INTERVAL_S")
    # A busy tenant's attribution is recomputed at most once per this many seconds (results lag by up to it).
    outbox_recompute_coalesce_s: float = Field(default=0.5, ge=0, le=60, validation_alias="OUTBOX_RECOMPUTE_COALESCE_S")
    outbox_redispatch_after_s: float = Field(default=120, gt=0, le=86_400, validation_alias="OUTBOX_REDISPATCH_AFTER_S")
    # A relay whose last successful pass is older than this fails the worker probe (/health/worker).
    outbox_relay_stale_after_s: float = Field(default=10, gt=0, le=3600, validation_alias="OUTBOX_RELAY_STALE_AFTER_S")
    # An outbox row waiting longer than this to be sent fails readiness (/health/ready): work is not moving.
    # Longer than the redispatch window, so a recompute held back behind a lost one does not trip it.
    outbox_max_pending_age_s: float = Field(default=600, gt=0, le=86_400, validation_alias="OUTBOX_MAX_PENDING_AGE_S")
    attribution_lookback_days: int = Field(default=30, ge=1, le=365, validation_alias="ATTRIBUTION_LOOKBACK_DAYS")
    # Celery limits for the Bayesian model (docs/architecture.md); a job may ask for less, never more.
    bayesian_soft_time_limit_s: float = Field(default=270, gt=0, le=3600, validation_alias="BAYESIAN_SOFT_TIME_LIMIT_S")
    bayesian_hard_time_limit_s: float = Field(default=300, gt=0, le=3600, validation_alias="BAYESIAN_HARD_TIME_LIMIT_S")
    # The LLM boundary (docs/architecture.md, "The LLM boundary"). Prices are cents per 1,000 tokens, per model.
    llm_provider: str = Field(default="mock", pattern=r"^[a-z0-9_]+$", validation_alias="LLM_PROVIDER")
    llm_base_url: str | None = Field(default=None, validation_alias="LLM_BASE_URL")
    llm_api_key: str = Field(default="", validation_alias="LLM_API_KEY")
    llm_model_cheap: str = Field(default="mock-mini", validation_alias="LLM_MODEL_CHEAP")
    llm_model_standard: str = Field(default="mock-standard", validation_alias="LLM_MODEL_STANDARD")
    llm_model_premium: str = Field(default="mock-large", validation_alias="LLM_MODEL_PREMIUM")
    llm_prices_cents_per_1k: dict[str, float] = Field(
        default={"mock-mini": 1.0, "mock-standard": 5.0, "mock-large": 20.0},
        validation_alias="LLM_PRICES_CENTS_PER_1K",
    )
    llm_max_tokens: int = Field(default=400, ge=16, le=32_000, validation_alias="LLM_MAX_TOKENS")
    llm_timeout_s: float = Field(default=10.0, gt=0, le=300, validation_alias="LLM_TIMEOUT_S")
    llm_breaker_threshold: int = Field(default=3, ge=1, le=100, validation_alias="LLM_BREAKER_THRESHOLD")
    llm_breaker_open_s: float = Field(default=300.0, gt=0, le=86_400, validation_alias="LLM_BREAKER_OPEN_S")
    llm_hourly_limit_cents: float = Field(default=500.0, ge=0, validation_alias="LLM_HOURLY_LIMIT_CENTS")
    llm_monthly_budget_cents: float = Field(default=2500.0, ge=0, validation_alias="LLM_MONTHLY_BUDGET_CENTS")
    llm_provider_kill_switch: bool = Field(default=False, validation_alias="LLM_PROVIDER_KILL_SWITCH")
    # Housekeeping (app.maintenance): how long finished work is kept before it is pruned, and its pace.
    # Ledgers and evidence (LLM calls, reservations, events, dead letters, reconciliations) are never pruned.
    housekeeping_enabled: bool = Field(default=True, validation_alias="HOUSEKEEPING_ENABLED")
    housekeeping_interval_s: float = Field(default=60, gt=0, le=86_400, validation_alias="HOUSEKEEPING_INTERVAL_S")
    housekeeping_batch_size: int = Field(default=1000, ge=1, le=5000, validation_alias="HOUSEKEEPING_BATCH_SIZE")
    housekeeping_max_batches: int = Field(default=100, ge=1, le=10_000, validation_alias="HOUSEKEEPING_MAX_BATCHES")
    retention_outbox_s: float = Field(default=86_400, ge=0, validation_alias="RETENTION_OUTBOX_S")
    retention_broker_s: float = Field(default=3600, ge=0, validation_alias="RETENTION_BROKER_S")
    retention_llm_cache_s: float = Field(default=7 * 86_400, ge=0, validation_alias="RETENTION_LLM_CACHE_S")
    retention_finished_jobs_s: float = Field(default=30 * 86_400, ge=0, validation_alias="RETENTION_FINISHED_JOBS_S")
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL", "APP_LOG_LEVEL"))

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        url = _parse(value)
        if url.drivername != "postgresql+asyncpg":
            raise ValueError("must be a postgresql+asyncpg:// URL")
        return value

    @field_validator("runtime_sync_database_url")
    @classmethod
    def _sync_driver(cls, value: str | None) -> str | None:
        if value is not None and not _parse(value).drivername.startswith("postgresql"):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("celery_broker_url")
    @classmethod
    def _broker(cls, value: str) -> str:
        if not value.startswith(("sqla+postgresql", "amqp://", "amqps://", "pyamqp://")):
            raise ValueError("must be sqla+postgresql://… or amqp://…")
        return value

    @field_validator("celery_result_backend")
    @classmethod
    def _result_backend(cls, value: str) -> str:
        if not value.startswith("db+postgresql"):
            raise ValueError("must be db+postgresql://…")
        return value

    @property
    def broker_polling_interval_s(self) -> float:
        """BROKER_POLLING_INTERVAL_S, or the default for the wake-up setting (see the field)."""
        if self.broker_polling_interval is not None:
            return self.broker_polling_interval
        return 1.0 if self.broker_wakeups else 0.05

    @property
    def payments_base_url(self) -> str | None:
        """The payment platform's API root; the mock stands in for it unless one is configured."""
        return self.payments_api_base_url or self.mock_platform_url

    @property
    def llm_url(self) -> str | None:
        """The provider's OpenAI-compatible root; the mock stands in unless one is configured."""
        return self.llm_base_url or self.mock_platform_url

    @property
    def sync_database_url(self) -> str:
        """The runtime DSN for synchronous code (worker, probes): same identity, psycopg driver."""
        if self.runtime_sync_database_url:
            return to_sync_url(self.runtime_sync_database_url)
        return to_sync_url(self.database_url)


def _parse(value: str):  # type: ignore[no-untyped-def]
    try:
        return make_url(value)
    except Exception as exc:
        raise ValueError("is not a valid database URL") from exc


def with_driver(url: str, drivername: str) -> str:
    """The same database URL (identity, host, options) for another driver."""
    return make_url(url).set(drivername=drivername).render_as_string(hide_password=False)


def to_sync_url(url: str) -> str:
    """Rewrite any postgresql URL to the psycopg (v3) driver."""
    return with_driver(url, "postgresql+psycopg")


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    location = first.get("loc") or ("?",)
    name = str(location[0])
    field = Settings.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    env_name = alias if isinstance(alias, str) else name.upper()
    reason = "is not set" if first.get("type") == "missing" else str(first.get("msg", "is invalid"))
    reason = reason.removeprefix("Value error, ")
    return f"configuration error: {env_name} {reason}"


def settings_or_report() -> Settings | None:
    """For entry points: the settings, or None after printing the one-line reason to stderr."""
    try:
        return get_settings()
    except ConfigurationError as exc:
        print(exc, file=sys.stderr)
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Load settings once; a bad or missing value raises ConfigurationError with one line naming it."""
    try:
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None
    _require_key_ring()
    return settings


def _require_key_ring() -> None:
    """The credential key ring stays out of Settings, so no dump of the settings holds a key; but a
    process without a usable one must not start, as it could verify no webhook and run no reconciliation."""
    try:
        key_ring()
    except SealingError as exc:
        raise ConfigurationError(f"configuration error: {exc}") from None
