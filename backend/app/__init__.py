"""The attribution service: a FastAPI api and a Celery worker sharing one data layer.

One folder per domain (webhooks, attribution, reconciliation, llm, outbox, tenants, monitoring),
each holding its routes, logic, worker tasks and schemas; core/ holds what every domain uses
(settings, database access, tenant context, problem documents, logs, sealing). docs/architecture.md
walks one webhook through them.
"""
