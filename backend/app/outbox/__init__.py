"""The transactional outbox: work committed with its cause, then handed to the broker.

    relay.py        claim pending rows (outbox_claim), plan broker messages, mark them dispatched,
                    sweep expired jobs and lost work, record the relay's heartbeat
    relay_step.py   the Celery worker bootstep that runs the relay on a thread of the worker's main
                    process, publishing through the worker's own Celery app

Cross-tenant access only through app_system's SECURITY DEFINER functions (backend/sql).
"""
