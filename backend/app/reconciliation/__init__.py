"""Reconciliation of webhook revenue against the payment platform's own record.

routes.py    POST /reconciliation/runs, GET runs and status, PUT the platform connection (thin;
             app/api/reconciliation.py re-exports it under the path the runbooks name)
service.py   api side: request a run (the worker executes it), read runs and status
schemas.py   request and response shapes
client.py    the platform's balance-transactions listing, every page, politely retried
compare.py   ledger vs platform, by external id (pure)
runs.py      worker side: fetch, compare, write the run and its items at once
tasks.py     the Celery task
"""
