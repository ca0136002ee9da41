"""The sealed credential columns, and rewriting every tenant's values of one column at once.

Migration 0018 seals the plaintext it finds (and its downgrade opens it again); re-sealing after a
key rotation (scripts/ops/reseal_credentials.py) opens each value and seals it under the ring's
current key. Both run as the schema owner, whom forced row-level security holds like everyone
else: for the one transaction of the rewrite the owner lifts it on that table. ALTER TABLE takes
the table's exclusive lock until commit, so no other session ever sees the table unforced; webhook
intake waits for the rewrite instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, text

from app.core.sealing import PURPOSE_PLATFORM_API_KEY, PURPOSE_WEBHOOK_SECRET


@dataclass(frozen=True)
class SealedColumn:
    table: str
    column: str
    row_key: tuple[str, ...]  # the primary key, to write each value back to its row
    purpose: str


WEBHOOK_SECRETS = SealedColumn("webhook_secrets", "secret_sealed", ("id",), PURPOSE_WEBHOOK_SECRET)
PLATFORM_API_KEYS = SealedColumn(
    "platform_connections", "api_key_sealed", ("tenant_id", "platform"), PURPOSE_PLATFORM_API_KEY
)
SEALED_COLUMNS = (WEBHOOK_SECRETS, PLATFORM_API_KEYS)

# (stored value, tenant id) -> the value to store instead, or None to leave the row as it is
Transform = Callable[[str, uuid.UUID], str | None]


def rewrite_every_tenant(
    conn: Connection, table: str, row_key: tuple[str, ...], source: str, target: str, transform: Transform
) -> int:
    """``target := transform(source)`` on every row of every tenant, in the caller's transaction;
    returns how many rows were written. Only the table's owner may call this."""
    selected = ", ".join(dict.fromkeys(("tenant_id", *row_key)))
    match = " AND ".join(f"{column} = :{column}" for column in row_key)
    conn.execute(text(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY"))
    rows = conn.execute(text(f"SELECT {selected}, {source} AS value FROM {table} ORDER BY {', '.join(row_key)}"))
    changes = []
    for row in rows.mappings().all():
        new = transform(row["value"], row["tenant_id"])
        if new is not None:
            changes.append({**{column: row[column] for column in row_key}, "new": new})
    if changes:
        conn.execute(text(f"UPDATE {table} SET {target} = :new WHERE {match}"), changes)
    conn.execute(text(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))
    return len(changes)
