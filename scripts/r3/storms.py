"""The webhook traffic of ingestion under fire: valid events with storms mixed in (docs/ops/phase8/README.md).

Every request has a kind, and every kind a known effect, so the run can be judged exactly:

| kind          | what is sent                                        | answer      | stored          |
|---------------|-----------------------------------------------------|-------------|-----------------|
| touchpoint    | a new signed touchpoint                             | 202         | one event       |
| conversion    | a new signed Stripe charge                          | 202         | one event       |
| pii           | a new touchpoint full of e-mails, phones and cards  | 202         | one event, no raw PII |
| replay        | an earlier request again (same webhook-id)          | 200 dup     | nothing         |
| collision     | a new webhook-id carrying an earlier event id       | 200 dup     | nothing         |
| malformed     | a signed touchpoint that breaks the schema          | 422         | one dead letter |
| invalid_json  | a signed body that is not JSON                      | 400         | one dead letter |
| cross_tenant  | tenant A's header, signed with tenant B's secret    | 401         | nothing         |

A replay or collision can overtake its original under load; so events are judged by group
(an original and its repeats): exactly one 202 per group, and 200 for the rest.
"""

from __future__ import annotations

import bisect
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.tenants.service import ProvisionedTenant
from app.webhooks.signatures import sign
from scripts.r3.openloop import Outcome, Shot

STORM_WEIGHTS: dict[str, float] = {
    "touchpoint": 60,
    "conversion": 12,
    "pii": 8,
    "replay": 5,
    "collision": 4,
    "malformed": 4,
    "invalid_json": 3,
    "cross_tenant": 4,
}
VALID_ONLY: dict[str, float] = {"touchpoint": 80, "conversion": 20}
EXPECTED_STATUS = {"malformed": 422, "invalid_json": 400, "cross_tenant": 401}
EVENT_KINDS = ("touchpoint", "conversion", "pii")
REPEAT_KINDS = ("replay", "collision")
DEAD_LETTER_KINDS = ("malformed", "invalid_json")
CHANNELS = ("paid_search", "social", "email", "display", "affiliate")
CUSTOMERS = 400  # customers per tenant, so conversions find earlier touchpoints


@dataclass(frozen=True)
class Sent:
    """What an event-bearing request carried, kept so replays and collisions can repeat it."""

    tenant: int
    platform: str
    webhook_id: str
    body: bytes
    group: int
    event_key: str  # the touchpoint event_id a collision reuses ("" for conversions)
    external_id: str  # what the database stores as external_event_id


@dataclass
class StormPlan:
    """Builds request ``i`` on demand (so signatures carry the send-time timestamp)."""

    tenants: list[ProvisionedTenant]
    run_tag: str  # unique per run: no id collides with an earlier run's
    rate: float
    seed: int = 7
    weights: dict[str, float] = field(default_factory=lambda: dict(STORM_WEIGHTS))
    repeat_lag_s: float = 0.5  # repeats target requests sent at least this long ago
    sent: dict[int, Sent] = field(default_factory=dict)
    raw_pii: list[str] = field(default_factory=list)
    dead_letters: Counter[int] = field(default_factory=Counter)  # tenant index -> dead letters sent
    _history: list[int] = field(default_factory=list)  # indices of sent events, ascending
    _touch_history: list[int] = field(default_factory=list)  # the touchpoints among them

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 -- reproducible traffic, not secrets
        self._kinds, self._weights = zip(*self.weights.items(), strict=True)

    def shot(self, index: int) -> Shot:
        kind = self._rng.choices(self._kinds, self._weights)[0]
        tenant = index % len(self.tenants)
        if kind in REPEAT_KINDS:
            original = self._earlier(index, collision=kind == "collision")
            if original is None:
                kind = "touchpoint"  # nothing old enough to repeat yet
            elif kind == "replay":
                return self._signed(
                    original.tenant,
                    original.platform,
                    original.body,
                    kind,
                    original.group,
                    webhook_id=original.webhook_id,
                )
            else:
                body = self._touchpoint(index, original.tenant, event_id=original.event_key)
                return self._signed(original.tenant, "touchpoints", body, kind, original.group)
        if kind in DEAD_LETTER_KINDS:
            self.dead_letters[tenant] += 1
        if kind == "invalid_json":
            return self._signed(tenant, "touchpoints", b'{"event_id": "half-', kind, None)
        if kind == "malformed":
            body = json.dumps({"event_id": f"bad-{self.run_tag}-{index}", "channel": "NOT A CHANNEL!"}).encode()
            return self._signed(tenant, "touchpoints", body, kind, None)
        if kind == "cross_tenant":
            other = self.tenants[(tenant + 1) % len(self.tenants)]
            body = self._touchpoint(index, tenant)
            return self._signed(tenant, "touchpoints", body, kind, None, secret=other.webhook_secret)
        platform = "stripe" if kind == "conversion" else "touchpoints"
        event_key = f"tp-{self.run_tag}-{index}" if platform == "touchpoints" else ""
        body = self._conversion(index) if kind == "conversion" else self._touchpoint(index, tenant, pii=kind == "pii")
        shot = self._signed(tenant, platform, body, kind, index)
        external_id = event_key or f"evt-{self.run_tag}-{index}"
        self.sent[index] = Sent(tenant, platform, shot.headers["webhook-id"], body, index, event_key, external_id)
        self._history.append(index)
        if event_key:
            self._touch_history.append(index)
        return shot

    def _earlier(self, index: int, collision: bool) -> Sent | None:
        history = self._touch_history if collision else self._history
        horizon = bisect.bisect_right(history, index - max(1, int(self.rate * self.repeat_lag_s)))
        recent = history[max(0, horizon - 200) : horizon]
        return self.sent[self._rng.choice(recent)] if recent else None

    def _signed(
        self,
        tenant: int,
        platform: str,
        body: bytes,
        kind: str,
        group: int | None,
        *,
        webhook_id: str | None = None,
        secret: str | None = None,
    ) -> Shot:
        owner = self.tenants[tenant]
        webhook_id = webhook_id or f"msg_{self.run_tag}_{self._rng.getrandbits(64):016x}"
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "x-tenant-id": str(owner.tenant_id),
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret or owner.webhook_secret, webhook_id, timestamp, body),
        }
        return Shot("POST", f"/webhooks/{platform}", kind, body, headers, tag=group)

    def _touchpoint(self, index: int, tenant: int, *, event_id: str | None = None, pii: bool = False) -> bytes:
        customer = f"cust-{self._rng.randrange(CUSTOMERS)}"
        document: dict[str, Any] = {
            "event_id": event_id or f"tp-{self.run_tag}-{index}",
            "customer_id": customer,
            "channel": self._rng.choice(CHANNELS),
            "occurred_at": datetime.now(UTC).isoformat(),
            "campaign": "autumn-launch",
        }
        if pii:
            email = f"r3.{self.run_tag}.{index}@example.com"
            phone = f"+1 415 {index % 1000:03d} {self._rng.randrange(10_000):04d}"
            self.raw_pii += [email, phone]
            document.update(
                customer_id=email,
                campaign=f"call {phone} or write {email}",
                email=email,
                note=f"card 4242 4242 4242 4242 from {email}",
            )
        return json.dumps(document).encode()

    def _conversion(self, index: int) -> bytes:
        document = {
            "id": f"evt-{self.run_tag}-{index}",
            "type": "charge.succeeded",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": f"ch-{self.run_tag}-{index}",
                    "amount": 1000 + index % 9000,
                    "currency": "usd",
                    "customer": f"cust-{self._rng.randrange(CUSTOMERS)}",
                }
            },
        }
        return json.dumps(document).encode()


@dataclass
class Judgement:
    """How the answers compare with what each kind should get, and what the database must now hold."""

    by_kind: dict[str, int]
    by_status: dict[str, int]
    transport_errors: dict[str, int]
    server_errors: int
    unexpected: dict[str, int]  # "<kind>:<status>" -> count
    groups: int
    groups_without_one_accept: int
    expected_events_per_tenant: dict[int, int]
    expected_dead_letters_per_tenant: dict[int, int]
    expected_conversions_per_tenant: dict[int, int]

    @property
    def errors(self) -> int:
        return sum(self.transport_errors.values()) + self.server_errors + sum(self.unexpected.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "by_kind": self.by_kind,
            "by_status": self.by_status,
            "transport_errors": self.transport_errors,
            "server_errors": self.server_errors,
            "unexpected": self.unexpected,
            "groups": self.groups,
            "groups_without_one_accept": self.groups_without_one_accept,
            "errors": self.errors,
        }


def judge(outcomes: list[Outcome], plan: StormPlan) -> Judgement:
    by_kind = Counter(o.kind for o in outcomes)
    by_status = Counter(str(o.status) for o in outcomes if o.status is not None)
    transport = Counter(o.error or "unknown" for o in outcomes if o.status is None)
    server_errors = sum(1 for o in outcomes if o.status is not None and o.status >= 500)
    unexpected: Counter[str] = Counter()
    accepts: Counter[int] = Counter()
    tenants = range(len(plan.tenants))
    events = dict.fromkeys(tenants, 0)
    conversions = dict.fromkeys(tenants, 0)
    for outcome in outcomes:
        if outcome.status is None or outcome.status >= 500:
            continue
        if outcome.kind in EVENT_KINDS or outcome.kind in REPEAT_KINDS:
            if outcome.status not in (200, 202):
                unexpected[f"{outcome.kind}:{outcome.status}"] += 1
            elif outcome.status == 202:
                accepts[outcome.tag] += 1
        elif outcome.status != EXPECTED_STATUS[outcome.kind]:
            unexpected[f"{outcome.kind}:{outcome.status}"] += 1
    for sent in plan.sent.values():
        events[sent.tenant] += 1
        conversions[sent.tenant] += sent.platform == "stripe"
    groups = set(plan.sent)
    return Judgement(
        dict(by_kind),
        dict(by_status),
        dict(transport),
        server_errors,
        dict(unexpected),
        len(groups),
        sum(1 for g in groups if accepts[g] != 1),
        events,
        {tenant: plan.dead_letters[tenant] for tenant in tenants},
        conversions,
    )
