"""Alembic environment: online migrations only, as the schema owner named by MIGRATION_DATABASE_URL."""

from __future__ import annotations

import os
import sys
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

from app.core.settings import to_sync_url
from app.core.tenancy import CONTEXT_KEYS_TABLE, sync_context_keys

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _migration_url() -> str:
    url = os.environ.get("MIGRATION_DATABASE_URL")
    if not url:
        sys.exit("configuration error: MIGRATION_DATABASE_URL is not set (the schema owner's DSN)")
    return to_sync_url(url)


def run_migrations_online() -> None:
    engine = create_engine(_migration_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        is_superuser = connection.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar_one()
        if is_superuser and os.environ.get("ALLOW_SUPERUSER_MIGRATIONS") != "1":
            sys.exit(
                "refusing to migrate as a superuser: tables must belong to the schema owner "
                "(set MIGRATION_DATABASE_URL to the owner's DSN)"
            )
        connection.commit()  # end the check's implicit transaction so Alembic owns the next ones
        context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        _sync_context_keys(connection)


def _sync_context_keys(connection: Connection) -> None:
    """After every run (an upgrade with nothing to do included: that is how a rotated ring reaches
    the database), the keys PostgreSQL verifies tenant contexts with are those of the environment's
    ring (app.core.tenancy); below migration 0024 there is nothing to sync."""
    exists = connection.execute(text("SELECT to_regclass(:t)"), {"t": f"public.{CONTEXT_KEYS_TABLE}"}).scalar_one()
    if exists is not None:
        sync_context_keys(connection)
    connection.commit()


if context.is_offline_mode():
    sys.exit("offline migrations are not supported: connect as the schema owner")
run_migrations_online()
