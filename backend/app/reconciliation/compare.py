"""Compare ledger (webhook) revenue with the platform's record, by external id. Pure and deterministic."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

STATUSES = ("matched", "missing_in_ledger", "missing_on_platform", "amount_mismatch")


@dataclass(frozen=True, order=True)
class Item:
    external_id: str
    status: str
    ledger_amount_cents: int | None
    platform_amount_cents: int | None


def compare(ledger: dict[str, int], platform: dict[str, int]) -> list[Item]:
    """Items sorted by external id, so the same inputs always give the same list and digest."""
    items = []
    for external_id in sorted(set(ledger) | set(platform)):
        mine, theirs = ledger.get(external_id), platform.get(external_id)
        if mine is None:
            status = "missing_in_ledger"
        elif theirs is None:
            status = "missing_on_platform"
        else:
            status = "matched" if mine == theirs else "amount_mismatch"
        items.append(Item(external_id, status, mine, theirs))
    return items


def totals(items: list[Item]) -> dict[str, Any]:
    counts = {status: sum(1 for item in items if item.status == status) for status in STATUSES}
    return {
        **counts,
        "items": len(items),
        "ledger_cents": sum(item.ledger_amount_cents or 0 for item in items),
        "platform_cents": sum(item.platform_amount_cents or 0 for item in items),
    }


def digest(items: list[Item]) -> str:
    canonical = json.dumps([asdict(item) for item in sorted(items)], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
