"""Ingestion under fire (EG8.5's load): what the intake holds, measured honestly.

- ingestion_under_fire: the entry point (profiles sanity, eg3_4, the sustained sweep, burst);
- openloop, http1: the open-loop generator and its small HTTP/1.1 client;
- storms: the webhook traffic and its exact bookkeeping;
- lag: attribution lag (event accepted -> its result visible) and the outbox backlog;
- http_peer: the same-run FastAPI + asyncpg insert peer (ratio_to_http_peer);
- profiling: where the time goes during a step (--profile-processes);
- null_server, k6_crosscheck: the generator checked against a no-op server and against k6;
- database, target: what the load asks of the database and of the command line;
- summarize_sweep: a sweep's small summary for docs/perf/.
"""
