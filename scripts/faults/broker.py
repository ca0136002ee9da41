"""RabbitMQ restarted under load: api and worker on ``CELERY_BROKER_URL=amqp://...``, the broker's
application stopped and started again (``rabbitmqctl stop_app``/``start_app``: every connection
drops, durable queues and persistent messages survive, as in a node restart), then the same
exact-count verdict: no task lost (every conversion attributed), none applied twice.

The broker is the one ``PHASE8_BROKER_URL`` names, or else the local node's default account on a
virtual host of the run's own (so no other client's queues are touched). Restarting needs
``rabbitmqctl`` on this machine and a broker nobody else is connected to; otherwise the scenario is
skipped and says why. Credentials come from the environment and are never printed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from scripts.faults.scenarios import ScenarioResult, judged, start_load, wait_worker_healthy
from scripts.topology import Topology

BROKER_ENV = "PHASE8_BROKER_URL"
VHOST = "attrib-faults"  # fixed, so a crashed run's vhost is deleted by the next one
LOCAL_DEFAULT = "amqp://guest:guest@127.0.0.1:5672/"  # RabbitMQ's stock account, accepted from localhost only
DOWN_S = 3.0
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def rabbitmqctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False)


def unavailable() -> str | None:
    """Why the scenario cannot run here, or None."""
    configured = os.environ.get(BROKER_ENV)
    if configured and (make_url(configured).host or "") not in LOCAL_HOSTS:
        return f"{BROKER_ENV} names a remote broker; this run can only restart a local one"
    if shutil.which("rabbitmqctl") is None:
        return "no RabbitMQ here (rabbitmqctl not found)"
    if rabbitmqctl("status", timeout=30).returncode != 0:
        return "rabbitmqctl status failed: no RabbitMQ node running here"
    others = [line for line in rabbitmqctl("list_connections", "vhost", "-q").stdout.splitlines() if line.strip()]
    if any(line.strip() != VHOST for line in others):
        return "other clients are connected to the local RabbitMQ; restarting it would break their work"
    return None


@contextlib.contextmanager
def run_vhost() -> Iterator[str]:
    """The broker URL api and worker get: the configured one, or the local default on VHOST."""
    configured = os.environ.get(BROKER_ENV)
    if configured:
        yield configured
        return
    rabbitmqctl("delete_vhost", VHOST)  # a crashed run's
    for step in (("add_vhost", VHOST), ("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")):
        if rabbitmqctl(*step).returncode != 0:
            raise RuntimeError(f"rabbitmqctl {step[0]} failed")
    try:
        yield LOCAL_DEFAULT + VHOST
    finally:
        rabbitmqctl("delete_vhost", VHOST)


def restart_broker(down_s: float = DOWN_S) -> None:
    """Stop the RabbitMQ application, wait, start it again; it is started again whatever happens."""
    try:
        stopped = rabbitmqctl("stop_app")
        if stopped.returncode != 0:
            raise RuntimeError(f"rabbitmqctl stop_app failed: {stopped.stderr[-300:]}")
        time.sleep(down_s)
    finally:
        if rabbitmqctl("start_app").returncode != 0:
            raise RuntimeError("rabbitmqctl start_app failed: the local RabbitMQ is down; start it by hand")


def broker_restart(topology: Topology, engine: Engine, rate: float, duration_s: float) -> ScenarioResult:
    load = start_load(topology, engine, rate, duration_s)
    time.sleep(duration_s / 4)
    # Proof the run really uses RabbitMQ: api and worker hold connections to it when it goes down.
    connections = len([line for line in rabbitmqctl("list_connections", "-q").stdout.splitlines() if line.strip()])
    restart_broker()
    started = time.monotonic()
    worker = wait_worker_healthy(topology, timeout_s=90)
    recovery = round(time.monotonic() - started, 3) if worker.ok else None
    record = load.join()
    result = judged("broker_restart", topology, engine, load, record, recovery, 120)
    result.details.update(broker_down_s=DOWN_S, broker="amqp (RabbitMQ)", amqp_connections_at_restart=connections)
    if connections == 0:
        result.status = "failed"
    return result
