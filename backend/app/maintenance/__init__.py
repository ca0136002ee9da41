"""Housekeeping: owns the pruning of finished work (completed outbox rows, consumed broker messages,
Celery result rows, old LLM cache entries, finished attribution and LLM jobs) after the retention
periods in settings, the periodic task that does it on the ``maintenance`` queue, the ticker that
schedules that task from the worker, and the ``housekeeping_*`` series of ``/metrics``.

Ledgers and evidence (``llm_api_calls``, budget reservations, distillation records, events, dead
letters, reconciliation runs) are never pruned: the database function that deletes
(``housekeeping_prune``, migration 0023, ``backend/sql/functions/housekeeping_prune.sql``) runs as
``app_system``, which has no right to delete from them.

- ``housekeeping``: what each kind is, and one run (batch after batch, each its own transaction);
- ``tasks``: the Celery task ``maintenance.housekeeping``;
- ``ticker``: the worker bootstep that sends that task every ``HOUSEKEEPING_INTERVAL_S``;
- ``metrics``: what ``/metrics`` shows of it.
"""
