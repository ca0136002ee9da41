"""What operators watch: liveness, readiness, worker health and Prometheus metrics.

health_routes.py    GET /health/live, /health/ready, /health/worker (bodies name the failed check)
readiness.py        the readiness checks: database, broker, outbox age, relay heartbeat
metrics_routes.py   GET /metrics and the request-timing middleware
metrics.py          request latency from this process, shared state from PostgreSQL (aggregates
                    through app_system's functions, never rows)
schemas.py          response shapes
"""
