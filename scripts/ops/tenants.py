"""Operator CLI: tenants, their keys and secrets, budgets, platform keys and the LLM controls.

    python -m scripts.ops.tenants create --name NAME [--user USER] [--json]
    python -m scripts.ops.tenants list [--json]
    python -m scripts.ops.tenants keys issue --tenant ID [--user USER] [--label TEXT] [--json]
    python -m scripts.ops.tenants keys list --tenant ID
    python -m scripts.ops.tenants keys revoke --tenant ID --key-id KEY_ID
    python -m scripts.ops.tenants webhook-secret rotate --tenant ID [--grace-s N] [--json]
    python -m scripts.ops.tenants budget set --tenant ID --user USER --month YYYY-MM --limit-cents N
    python -m scripts.ops.tenants budget defaults [--monthly-cents N] [--hourly-cents N]
    python -m scripts.ops.tenants platform-key set --tenant ID [--platform stripe] < key-file
    python -m scripts.ops.tenants kill-switch status | on --reason TEXT | off
    python -m scripts.ops.tenants shutoff lift --tenant ID --user USER

Connects as ops_admin ($OPS_ADMIN_DATABASE_URL, in .run/topology.env): never as the runtime role,
never as a superuser. A new API key or webhook secret is printed exactly once, on stdout (JSON with
--json, for scripts), and nowhere else: store it then. A platform key is read from stdin, so it
never appears on a command line. Webhook secrets and platform keys are sealed with the key ring in
$SECRETS_ENCRYPTION_KEYS before they are stored.
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError

from app.core.sealing import PURPOSE_PLATFORM_API_KEY, SealingError, key_ring
from app.core.settings import to_sync_url
from app.core.tenancy import TenantContext
from app.reconciliation.service import UPSERT_CONNECTION_SQL
from app.tenants.service import create_tenant, issue_api_key, rotate_webhook_secret
from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, env_default, fail, redact_dsn
from scripts.ops.llm_kill_switch import switch

DSN_ENV = "OPS_ADMIN_DATABASE_URL"
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class Refused(Exception):
    """The request names something that does not exist, or asks what the data forbids (exit 1)."""


@contextmanager
def admin_connection() -> Iterator[Connection]:
    dsn = env_default(DSN_ENV)
    if not dsn:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"no DSN: set {DSN_ENV} (source .run/topology.env)")
    engine = create_engine(to_sync_url(dsn), pool_pre_ping=False)
    try:
        with engine.begin() as conn:
            user = conn.execute(text("SELECT current_user")).scalar_one()
            if user != "ops_admin":
                fail(ExitCode.USAGE_OR_ENVIRONMENT, f"{DSN_ENV} must name ops_admin, not {user}")
            yield conn
    finally:
        engine.dispose()


def tenant_name(conn: Connection, tenant_id: uuid.UUID) -> str:
    name = conn.execute(text("SELECT name FROM tenants WHERE tenant_id = :t"), {"t": tenant_id}).scalar()
    if name is None:
        raise Refused(f"no tenant {tenant_id}")
    return str(name)


def cmd_create(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    tenant = create_tenant(conn, args.name, user_id=args.user)
    return {
        "tenant_id": str(tenant.tenant_id),
        "name": args.name,
        "user_id": tenant.user_id,
        "api_key": tenant.api_key,
        "webhook_secret": tenant.webhook_secret,
    }


def cmd_list(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    rows = conn.execute(
        text(
            "SELECT t.tenant_id, t.name, t.created_at, "
            "(SELECT count(*) FROM api_keys k WHERE k.tenant_id = t.tenant_id AND k.revoked_at IS NULL) AS keys "
            "FROM tenants t ORDER BY t.created_at"
        )
    ).all()
    return {"tenants": [{**row._asdict(), "tenant_id": str(row.tenant_id)} for row in rows]}


def cmd_keys_issue(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    tenant_name(conn, args.tenant)
    api_key = issue_api_key(conn, TenantContext(args.tenant, args.user), args.label)
    return {"tenant_id": str(args.tenant), "user_id": args.user, "api_key": api_key}


def cmd_keys_list(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    tenant_name(conn, args.tenant)
    rows = conn.execute(
        text(
            "SELECT id, user_id, label, created_at, revoked_at FROM api_keys WHERE tenant_id = :t ORDER BY created_at"
        ),
        {"t": args.tenant},
    ).all()
    return {"tenant_id": str(args.tenant), "keys": [{**row._asdict(), "id": str(row.id)} for row in rows]}


def cmd_keys_revoke(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    tenant_name(conn, args.tenant)
    revoked = conn.execute(
        text(
            "UPDATE api_keys SET revoked_at = now() WHERE id = :k AND tenant_id = :t AND revoked_at IS NULL "
            "RETURNING user_id"
        ),
        {"k": args.key_id, "t": args.tenant},
    ).first()
    if revoked is None:
        raise Refused(f"tenant {args.tenant} has no active key {args.key_id}")
    return {"tenant_id": str(args.tenant), "key_id": str(args.key_id), "user_id": revoked.user_id, "revoked": True}


def cmd_rotate(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    tenant_name(conn, args.tenant)
    secret = rotate_webhook_secret(conn, TenantContext(args.tenant, "ops"), args.grace_s)
    return {"tenant_id": str(args.tenant), "webhook_secret": secret, "previous_valid_for_s": args.grace_s}


def cmd_budget_set(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    if not MONTH.match(args.month):
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"--month must be YYYY-MM, not {args.month!r}")
    tenant_name(conn, args.tenant)
    row = conn.execute(
        text(
            "INSERT INTO llm_budget_periods (tenant_id, user_id, period_start, limit_cents) "
            "VALUES (:t, :u, CAST(:m || '-01' AS date), :limit) "
            "ON CONFLICT (tenant_id, user_id, period_start) DO UPDATE SET limit_cents = EXCLUDED.limit_cents "
            "RETURNING limit_cents, spent_cents, reserved_cents"
        ),
        {"t": args.tenant, "u": args.user, "m": args.month, "limit": args.limit_cents},
    ).one()
    return {
        "tenant_id": str(args.tenant),
        "user_id": args.user,
        "month": args.month,
        **{key: float(value) for key, value in row._asdict().items()},
    }


def cmd_budget_defaults(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    for column, value in (("monthly_budget_cents", args.monthly_cents), ("hourly_limit_cents", args.hourly_cents)):
        if value is not None:
            conn.execute(text(f"UPDATE llm_limits SET {column} = :v, updated_at = now()"), {"v": value})
    row = conn.execute(text("SELECT monthly_budget_cents, hourly_limit_cents FROM llm_limits")).one()
    return {key: float(value) for key, value in row._asdict().items()}


def cmd_platform_key(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    tenant_name(conn, args.tenant)
    api_key = sys.stdin.readline().strip()
    if not api_key:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no key on stdin (pipe it in; never put it on a command line)")
    sealed = key_ring().seal(api_key, args.tenant, PURPOSE_PLATFORM_API_KEY)
    conn.execute(UPSERT_CONNECTION_SQL, {"tenant_id": args.tenant, "platform": args.platform, "sealed": sealed})
    return {"tenant_id": str(args.tenant), "platform": args.platform, "stored": "sealed"}


def cmd_kill_switch(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    if args.action == "on" and not args.reason:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "`on` needs --reason, so the next operator knows why")
    state = switch(conn.connection.driver_connection, args.action, args.reason)  # type: ignore[arg-type]
    if state is None:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, "no kill-switch row: migrations are not at head")
    return state


def cmd_shutoff_lift(conn: Connection, args: argparse.Namespace) -> dict[str, Any]:
    tenant_name(conn, args.tenant)
    row = conn.execute(
        text(
            "UPDATE llm_hourly_shutoff h SET shut_off = false, reason = 'lifted by an operator' "
            "WHERE tenant_id = :t AND user_id = :u AND hour_start = date_trunc('hour', now(), 'UTC') AND shut_off "
            "RETURNING h.spent_cents >= (SELECT hourly_limit_cents FROM llm_limits) AS at_limit"
        ),
        {"t": args.tenant, "u": args.user},
    ).first()
    # The flag is lifted; a user whose spend this hour is at the limit is blocked again by the next
    # call until the hour ends (raise the limit first with `budget defaults --hourly-cents`).
    at_limit = bool(row and row.at_limit)
    return {"tenant_id": str(args.tenant), "user_id": args.user, "lifted": row is not None, "still_at_limit": at_limit}


Command = Callable[[Connection, argparse.Namespace], dict[str, Any]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.ops.tenants",
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(parent: Any, name: str, run: Command, summary: str) -> argparse.ArgumentParser:
        cmd: argparse.ArgumentParser = parent.add_parser(name, help=summary, description=summary)
        cmd.set_defaults(run=run)
        cmd.add_argument("--json", action="store_true", help="print JSON (for scripts)")
        return cmd

    def tenant(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--tenant", type=uuid.UUID, required=True, help="tenant id")

    create = command(sub, "create", cmd_create, "create a tenant, its first user's API key and its webhook secret")
    create.add_argument("--name", required=True)
    create.add_argument("--user", default="owner", help="the first user's id (default owner)")
    command(sub, "list", cmd_list, "list tenants (no secrets)")

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    issue = command(keys, "issue", cmd_keys_issue, "issue an API key for a user of a tenant (printed once)")
    tenant(issue)
    issue.add_argument("--user", default="owner")
    issue.add_argument("--label", default="", help="a note kept with the key")
    tenant(command(keys, "list", cmd_keys_list, "a tenant's keys: ids, users, labels, revocations (no keys)"))
    revoke = command(keys, "revoke", cmd_keys_revoke, "revoke a key by id (see `keys list`); it stops at once")
    tenant(revoke)
    revoke.add_argument("--key-id", type=uuid.UUID, required=True)

    secret = sub.add_parser("webhook-secret", help="webhook signing secrets")
    rotate = command(
        secret.add_subparsers(dest="secret_command", required=True),
        "rotate",
        cmd_rotate,
        "issue a new webhook secret (printed once); the ones in force stay valid for --grace-s",
    )
    tenant(rotate)
    rotate.add_argument("--grace-s", type=int, default=86_400, help="seconds the previous secret stays valid")

    budget = sub.add_parser("budget", help="LLM budgets").add_subparsers(dest="budget_command", required=True)
    setting = command(budget, "set", cmd_budget_set, "set a user's LLM budget for a month")
    tenant(setting)
    setting.add_argument("--user", required=True)
    setting.add_argument("--month", required=True, help="YYYY-MM")
    setting.add_argument("--limit-cents", type=float, required=True)
    defaults = command(budget, "defaults", cmd_budget_defaults, "read or set the limits new periods and hours get")
    defaults.add_argument("--monthly-cents", type=float)
    defaults.add_argument("--hourly-cents", type=float)

    platform = sub.add_parser("platform-key", help="payment-platform API keys")
    key = command(
        platform.add_subparsers(dest="platform_command", required=True),
        "set",
        cmd_platform_key,
        "store a tenant's payment-platform key, read from stdin, sealed",
    )
    tenant(key)
    key.add_argument("--platform", default="stripe", choices=["stripe"])

    kill = command(sub, "kill-switch", cmd_kill_switch, "read or flip the LLM provider kill switch")
    kill.add_argument("action", choices=["status", "on", "off"])
    kill.add_argument("--reason", help="why (required for `on`)")

    shutoff = sub.add_parser("shutoff", help="hourly LLM shutoffs")
    lift = command(
        shutoff.add_subparsers(dest="shutoff_command", required=True),
        "lift",
        cmd_shutoff_lift,
        "lift a user's hourly shutoff for the rest of this hour",
    )
    tenant(lift)
    lift.add_argument("--user", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with admin_connection() as conn:
            result = args.run(conn, args)
    except Refused as exc:
        fail(ExitCode.GATE_FAILED, str(exc))
    except SealingError as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, str(exc))
    except DBAPIError as exc:
        reason = (str(exc.orig).splitlines() or ["failed"])[0] if exc.orig else type(exc).__name__
        fail(ExitCode.GATE_FAILED, f"refused by the database: {redact_dsn(reason)}")
    if args.json:
        emit(result)
    else:
        for name, value in result.items():
            print(f"{name}: {value}")
    return ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
