"""Wrong or missing settings fail at start-up with one line naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.core.settings import ConfigurationError, Settings, get_settings, to_sync_url

GOOD = {
    "DATABASE_URL": "postgresql+asyncpg://app_user:pw@127.0.0.1:5432/db",
    "CELERY_BROKER_URL": "sqla+postgresql://app_user:pw@127.0.0.1:5432/db",
    "CELERY_RESULT_BACKEND": "db+postgresql://app_user:pw@127.0.0.1:5432/db",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.endswith(("DATABASE_URL", "_BROKER_URL", "RESULT_BACKEND")):
            monkeypatch.delenv(key)
    for key, value in GOOD.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_good_settings_load(env: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    assert isinstance(settings, Settings)
    assert settings.sync_database_url.startswith("postgresql+psycopg://app_user:pw@")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", None, "configuration error: DATABASE_URL is not set"),
        (
            "DATABASE_URL",
            "postgresql://app_user@h/db",
            "configuration error: DATABASE_URL must be a postgresql+asyncpg",
        ),
        ("CELERY_BROKER_URL", "redis://localhost", "configuration error: CELERY_BROKER_URL must be"),
        ("CELERY_RESULT_BACKEND", None, "configuration error: CELERY_RESULT_BACKEND is not set"),
        ("WORKER_PROBE_TIMEOUT_S", "-1", "configuration error: WORKER_PROBE_TIMEOUT_S"),
        ("SECRETS_ENCRYPTION_KEYS", None, "configuration error: SECRETS_ENCRYPTION_KEYS is not set"),
        ("SECRETS_ENCRYPTION_KEYS", "k1:cHc=", "configuration error: SECRETS_ENCRYPTION_KEYS: each entry"),
    ],
)
def test_bad_setting_is_named(env: pytest.MonkeyPatch, name: str, value: str | None, message: str) -> None:
    if value is None:
        env.delenv(name)
    else:
        env.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("module", ["app.api_server", "app.worker"])
def test_launchers_exit_2_with_one_line(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "_BROKER_URL", "RESULT_BACKEND"))}
    result = subprocess.run(
        [sys.executable, "-m", module], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "configuration error: DATABASE_URL is not set"


def test_sync_url_keeps_identity_and_socket() -> None:
    url = "postgresql+asyncpg://app_user:pw@/db?host=/tmp/x&port=5432"
    assert to_sync_url(url) == "postgresql+psycopg://app_user:pw@/db?host=%2Ftmp%2Fx&port=5432"


@pytest.mark.parametrize(
    ("variables", "interval"),
    [
        ({}, 1.0),  # wake-ups on: polling is only the safety net
        ({"BROKER_WAKEUPS": "false"}, 0.05),  # polling alone finds the work
        ({"BROKER_POLLING_INTERVAL_S": "0.2"}, 0.2),
        ({"BROKER_WAKEUPS": "false", "BROKER_POLLING_INTERVAL_S": "0.5"}, 0.5),
    ],
)
def test_the_broker_polls_often_only_without_wakeups(
    env: pytest.MonkeyPatch, variables: dict[str, str], interval: float
) -> None:
    for key in ("BROKER_WAKEUPS", "BROKER_POLLING_INTERVAL_S"):
        env.delenv(key, raising=False)
    for key, value in variables.items():
        env.setenv(key, value)
    assert get_settings().broker_polling_interval_s == interval
