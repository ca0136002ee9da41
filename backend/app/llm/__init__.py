"""LLM tasks through one provider boundary: the only code that may reach a model provider.

routes.py     POST /llm/tasks and reads (thin)
service.py    api side: a job row and its outbox row commit together
schemas.py    request and response shapes
boundary.py   one call: router, idempotency, kill switch, hourly shutoff, budget reservation,
              cache, breaker, timeout, provider, ledger (the order is fixed; see docs/architecture.md)
router.py     the complexity router (task score -> tier, pushed down under budget pressure)
config.py     prices and limits derived from settings
providers.py  the OpenAI-compatible provider client; private to the boundary
synthesis.py  worker side: the four task types, built from tenant data, run through the boundary
tasks.py      the Celery tasks, one per task type
"""
