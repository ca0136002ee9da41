"""Credentials sealed at rest: webhook signing secrets and platform API keys hold ciphertexts only.

``webhook_secrets.secret`` and ``platform_connections.api_key`` held plaintext that ops_reader
(BYPASSRLS), app_ro and any dump or backup could read. They become ``secret_sealed`` and
``api_key_sealed``: AES-256-GCM under the key ring in ``SECRETS_ENCRYPTION_KEYS`` (app.core.sealing),
which lives in the environment of api, worker and operator, never in the database. A CHECK refuses
anything that is not in the sealed format, so a code path that forgot to seal fails loudly.

ops_reader and app_ro lose SELECT on these two tables and get it back on every column but the
sealed one; the runtime (app_rw) keeps its grants. ``webhook_intake_secrets`` returns the sealed
values, which the api opens.

Rows that exist are sealed here with the ring of the migration's environment (and opened again
by the downgrade); without a ring, a migration that finds rows stops and changes nothing. The
tables are then rewritten, so their data files keep no copy of the dropped plaintext.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

from __future__ import annotations

import uuid
from typing import NamedTuple

from alembic import op

from app.core.ddl import frozen_sql
from app.core.roles import OPS_READER_ROLE, READ_ONLY_GROUP
from app.core.sealing import KEYS_ENV, PURPOSE_PLATFORM_API_KEY, PURPOSE_WEBHOOK_SECRET, SealingError, key_ring
from app.tenants.credentials import Transform, rewrite_every_tenant

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

READERS = f"{READ_ONLY_GROUP}, {OPS_READER_ROLE}"
SEALED_FORMAT = "^v[0-9]+:[^:]+:[A-Za-z0-9+/]+=*$"  # app.core.sealing: version, key id, base64


class Credential(NamedTuple):  # not a dataclass: Alembic loads revisions outside sys.modules
    table: str
    plain: str
    sealed: str
    primary_key: tuple[str, ...]
    readable: tuple[str, ...]  # what ops_reader and app_ro may still select
    purpose: str


CREDENTIALS = (
    Credential(
        "webhook_secrets",
        "secret",
        "secret_sealed",
        ("id",),
        ("id", "tenant_id", "created_at", "expires_at"),
        PURPOSE_WEBHOOK_SECRET,
    ),
    Credential(
        "platform_connections",
        "api_key",
        "api_key_sealed",
        ("tenant_id", "platform"),
        ("tenant_id", "platform", "created_at"),
        PURPOSE_PLATFORM_API_KEY,
    ),
)


# webhook_intake_secrets (0010) reading the sealed column, and as 0010 created it.
INTAKE_SECRETS = frozen_sql(__file__, "0018_webhook_intake_secrets.sql")
INTAKE_SECRETS_BEFORE = frozen_sql(__file__, "0018_downgrade_webhook_intake_secrets.sql")


def _seal(credential: Credential) -> Transform:
    def seal(plaintext: str, tenant_id: uuid.UUID) -> str:
        try:
            ring = key_ring()
        except SealingError as exc:
            raise RuntimeError(
                f"0018: {credential.table} holds plaintext credentials to seal, but {exc}. Run the migration "
                f"with the {KEYS_ENV} that api and worker use (.run/<name>.env for the native topology)"
            ) from None
        return ring.seal(plaintext, tenant_id, credential.purpose)

    return seal


def _open(credential: Credential) -> Transform:
    def open_sealed(sealed: str, tenant_id: uuid.UUID) -> str:
        try:
            return key_ring().open(sealed, tenant_id, credential.purpose)
        except SealingError as exc:
            raise RuntimeError(
                f"0018 downgrade: a value of {credential.table}.{credential.sealed} (tenant {tenant_id}) "
                f"cannot be restored: {exc}. Nothing was changed; run with the {KEYS_ENV} that sealed it"
            ) from None

    return open_sealed


def _rewrite_data_files(table: str) -> None:
    """DROP COLUMN leaves the plaintext in the data file, in every row and in the versions the
    sealing UPDATE superseded; a rewrite copies each of them with the dropped column as null.
    CLUSTER rewrites inside a transaction, which VACUUM FULL cannot; its clustering mark means
    nothing here and is removed."""
    op.execute(f"CLUSTER {table} USING {table}_pkey")
    op.execute(f"ALTER TABLE {table} SET WITHOUT CLUSTER")


def upgrade() -> None:
    for c in CREDENTIALS:
        op.execute(f"ALTER TABLE {c.table} ADD COLUMN {c.sealed} text")
        sealed = rewrite_every_tenant(op.get_bind(), c.table, c.primary_key, c.plain, c.sealed, _seal(c))
        op.execute(
            f"ALTER TABLE {c.table} ALTER COLUMN {c.sealed} SET NOT NULL, "
            f"ADD CONSTRAINT {c.table}_{c.sealed}_format CHECK ({c.sealed} ~ '{SEALED_FORMAT}'), "
            f"DROP COLUMN {c.plain}"
        )
        if sealed:
            _rewrite_data_files(c.table)
        op.execute(f"REVOKE SELECT ON {c.table} FROM {READERS}")
        op.execute(f"GRANT SELECT ({', '.join(c.readable)}) ON {c.table} TO {READERS}")
    op.execute(INTAKE_SECRETS)


def downgrade() -> None:
    for c in CREDENTIALS:
        op.execute(f"ALTER TABLE {c.table} ADD COLUMN {c.plain} text")
        rewrite_every_tenant(op.get_bind(), c.table, c.primary_key, c.sealed, c.plain, _open(c))
        op.execute(f"ALTER TABLE {c.table} ALTER COLUMN {c.plain} SET NOT NULL, DROP COLUMN {c.sealed}")
        op.execute(f"REVOKE SELECT ON {c.table} FROM {READERS}")  # with it, the column grants
        op.execute(f"GRANT SELECT ON {c.table} TO {READERS}")
    op.execute(INTAKE_SECRETS_BEFORE)
