"""Who a unit of work runs for, and the one statement that tells PostgreSQL.

Row-level security policies compare rows with the GUCs set here. They are set with
``set_config(..., true)`` (transaction-local), so a pooled connection never carries a
tenant into the next transaction, and a transaction that never set them sees no rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import TextClause, text

TENANT_GUC = "app.current_tenant_id"
USER_GUC = "app.current_user_id"
API_KEY_GUC = "app.api_key_hash"

SET_CONTEXT_SQL: TextClause = text(
    f"SELECT set_config('{TENANT_GUC}', :tenant_id, true), set_config('{USER_GUC}', :user_id, true)"
)
SET_API_KEY_SQL: TextClause = text(f"SELECT set_config('{API_KEY_GUC}', :key_hash, true)")


@dataclass(frozen=True, slots=True)
class TenantContext:
    tenant_id: uuid.UUID
    user_id: str = ""

    def as_params(self) -> dict[str, str]:
        return {"tenant_id": str(self.tenant_id), "user_id": self.user_id}
