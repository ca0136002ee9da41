"""What a compose project is, for whoever must take one down: the file, the variables a run sets
itself, and ``compose_down``. A module of its own so the native lifecycle (which cleans up whatever
a previous run left, compose projects included) need not import compose mode, which imports it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from app.core.sealing import KEYS_ENV
from scripts.harness import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.e2e.yml"
DOWN_TIMEOUT_S = 120.0
# Settings the file passes through to api and worker, so a run (the fault scenarios) may set them
# through TopologyConfig.extra_env as in the native mode; any other extra setting is refused.
COMPOSE_TUNABLES = ("OUTBOX_REDISPATCH_AFTER_S",)
# What a compose run must never inherit from the operator's shell: privileged DSNs, and values the
# file interpolates that this run sets itself.
COMPOSE_VARIABLES = (
    "POSTGRES_PASSWORD",
    "APP_OWNER_PASSWORD",
    "APP_USER_PASSWORD",
    "OPS_READER_PASSWORD",
    "OPS_ADMIN_PASSWORD",
    KEYS_ENV,
    "E2E_POSTGRES_PORT",
    "E2E_API_PORT",
    "E2E_MOCK_PORT",
    *COMPOSE_TUNABLES,
)


def compose_down(command: list[str], project: str, log_path: Path, env: dict[str, str]) -> bool:
    """``down -v`` for a project (containers, its network and volumes); True when Compose says it did.

    Needs no passwords: every variable the file requires is given a placeholder here, since taking
    things down interpolates the file too. ``env``: the caller's environment without privileged DSNs.
    """
    if not command:
        return False
    env = dict(env)
    env.update({name: env.get(name) or "down" for name in COMPOSE_VARIABLES if not name.startswith("E2E_")})
    argv = [*command, "-p", project, "-f", str(COMPOSE_FILE), "down", "-v", "--remove-orphans", "-t", "5"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        try:
            result = subprocess.run(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches us; we stop Compose
                timeout=DOWN_TIMEOUT_S,
                check=False,
            )
        except (subprocess.TimeoutExpired, OSError):
            return False
    return result.returncode == 0
