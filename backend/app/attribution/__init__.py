"""Attribution: jobs and results, from the request to the model run.

    routes.py      POST /attribution/jobs, GET jobs and results (thin)
    service.py     api side: a job row and its outbox row commit together; results read under RLS
    schemas.py     request and response shapes
    jobs.py        worker side: start, succeed, fail or time out (with the last-touch fallback)
    last_touch.py  deterministic last-touch, in SQL
    bayesian.py    the Bayesian channel model (NumPy), run under a hard time limit
    tasks.py       the Celery tasks that run them

Server-side SQL: backend/sql (functions and policies of attribution_events, attribution_jobs, results).
"""
