"""What ``/metrics`` shows of housekeeping: rows removed by kind, and when each kind last ran.

Read from ``housekeeping_totals`` at scrape time (``app.monitoring.metrics``), which the pruning
function updates in the transaction that deletes, so every api replica reports the same counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import text

TOTALS_SQL = text(
    "SELECT kind, removed, extract(epoch FROM last_batch_at)::float8 AS last_batch_at FROM housekeeping_totals"
)


def families(rows: Sequence[Any]) -> Iterator[Metric]:
    removed = CounterMetricFamily("housekeeping_removed", "rows housekeeping pruned, by kind", labels=["kind"])
    last = GaugeMetricFamily(
        "housekeeping_last_batch_timestamp_seconds", "unix time of the last pruning batch, by kind", labels=["kind"]
    )
    for row in rows:
        removed.add_metric([row.kind], row.removed)
        last.add_metric([row.kind], row.last_batch_at)
    yield removed
    yield last
