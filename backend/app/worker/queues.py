"""The worker's queues, importable without building the Celery app (migrations and tests use it)."""

QUEUES = ("housekeeping", "maintenance", "llm", "attribution")
