"""Re-seal every stored credential under the key ring's current key, after a key rotation.

    python scripts/ops/reseal_credentials.py           # re-seal what an older key sealed
    python scripts/ops/reseal_credentials.py --check   # only count; exit 0 when the old key may go

The ring comes from $SECRETS_ENCRYPTION_KEYS, as api and worker read it: the first key seals, any
key opens. Connects as the schema owner, from $MIGRATION_DATABASE_URL only (a DSN on a command line
is visible to every user of the host). Both tables are rewritten in one transaction, during which
webhook intake waits. Prints counts per table and the tenants of values that do not open, never a
value. Steps: docs/ops/secrets_at_rest.md.

Exits 1 when a value does not open with the ring (its key is missing, or it was tampered with or
copied from another tenant's row), and with --check also while a value is sealed under an older
key: then removing that key would lose it.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.exc import SQLAlchemyError

from app.core.sealing import KEYS_ENV, KeyRing, SealingError, key_ring
from app.core.settings import to_sync_url
from app.tenants.credentials import SEALED_COLUMNS, SealedColumn, rewrite_every_tenant
from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, env_default, fail, redact_dsn

DSN_ENV = "MIGRATION_DATABASE_URL"


def reseal(conn: Connection, sealed: SealedColumn, ring: KeyRing) -> dict[str, Any]:
    """One column's values under the current key; counts, and the tenants of values that do not
    open (left as they are)."""
    current: list[uuid.UUID] = []
    unopened: list[str] = []

    def under_current_key(value: str, tenant_id: uuid.UUID) -> str | None:
        try:
            plaintext = ring.open(value, tenant_id, sealed.purpose)
        except SealingError:
            unopened.append(str(tenant_id))
            return None
        if ring.key_id_of(value) == ring.current:
            current.append(tenant_id)
            return None
        return ring.seal(plaintext, tenant_id, sealed.purpose)

    older = rewrite_every_tenant(conn, sealed.table, sealed.row_key, sealed.column, sealed.column, under_current_key)
    return {"older_key": older, "current_key": len(current), "does_not_open": sorted(unopened)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing: count what would be re-sealed (rolled back)"
    )
    args = parser.parse_args(argv)
    dsn = env_default(DSN_ENV)
    if not dsn:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"no DSN: set {DSN_ENV} (the schema owner's; source .run/topology.env)")
    try:
        ring = key_ring()
    except SealingError as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"{exc} (source .run/topology.env, or set {KEYS_ENV})")
    engine = create_engine(to_sync_url(dsn), poolclass=pool.NullPool, hide_parameters=True)
    try:
        with engine.connect() as conn:
            tables = {sealed.table: reseal(conn, sealed, ring) for sealed in SEALED_COLUMNS}
            if args.check:
                conn.rollback()
            else:
                conn.commit()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc)
        fail(ExitCode.USAGE_OR_ENVIRONMENT, redact_dsn((reason.splitlines() or ["failed"])[0]))
    finally:
        engine.dispose()
    older = sum(t["older_key"] for t in tables.values())
    failed = any(t["does_not_open"] for t in tables.values()) or (args.check and older > 0)
    emit(
        {
            "status": "failed" if failed else "passed",
            "mode": "check" if args.check else "reseal",
            "current_key_id": ring.current,
            "resealed": 0 if args.check else older,
            "tables": tables,
        }
    )
    return ExitCode.GATE_FAILED if failed else ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
