"""One id from request to worker: the api answers with X-Request-ID (the caller's, when it is a sane
token), logs JSON lines, and the worker's lines for the work that request caused carry the same id."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
from sqlalchemy import Engine

from app.tenants.service import create_tenant
from scripts.topology import Topology

from .conftest import TwoTenants
from .test_b07_p8_topology_closure_pack import NOW, touch
from .webhook_client import bearer, eventually, post_webhook


def test_the_request_id_is_returned(api: httpx.Client) -> None:
    assert api.get("/health/live", headers={"X-Request-ID": "trace-abc.1"}).headers["x-request-id"] == "trace-abc.1"
    made = api.get("/health/live", headers={"X-Request-ID": "forged\tline"}).headers["x-request-id"]
    assert made != "forged\tline" and len(made) == 32
    assert len(api.get("/health/live").headers["x-request-id"]) == 32


def json_lines(path: Path) -> list[dict[str, object]]:
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue  # a process's own startup banner, before logging is set up
    return lines


def test_the_worker_logs_the_id_of_the_request_that_caused_the_task(
    api: httpx.Client, topology: Topology, two_tenants: TwoTenants
) -> None:
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    created = api.post(
        "/api/v1/llm/route",
        headers={**bearer(two_tenants.a), "X-Request-ID": request_id},
        json={"request_id": f"corr-{uuid.uuid4().hex[:8]}", "question": "which channel?"},
    )
    assert created.status_code == 202 and created.headers["x-request-id"] == request_id
    logs = sorted(Path(topology.config.logs_dir).glob("worker*.log"))

    def worker_lines() -> list[dict[str, object]]:
        return [line for log in logs for line in json_lines(log) if line.get("request_id") == request_id]

    lines = eventually(worker_lines, timeout_s=30, interval_s=0.3)
    assert any(
        "succeeded" in str(line["message"])
        for line in eventually(
            lambda: [line for line in worker_lines() if "succeeded" in str(line["message"])], timeout_s=30
        )
    )
    assert all(line["tenant_id"] == str(two_tenants.a.tenant_id) for line in lines)
    assert json_lines(Path(topology.config.logs_dir) / "api.log"), "the api writes JSON lines too"


def test_the_recompute_a_webhook_caused_logs_its_request_id(
    api: httpx.Client, topology: Topology, runtime_engine: Engine
) -> None:
    """grep one webhook's request id: the api's answer, and the worker's line for the recompute that
    covered it (coalesced recomputes list every covered id, comma separated)."""
    request_id = f"wh-{uuid.uuid4().hex[:12]}"
    other = f"wh-{uuid.uuid4().hex[:12]}"  # the control: an id no request carried
    with runtime_engine.begin() as conn:  # its own: the shared tenants' event counts stay as other tests expect
        tenant = create_tenant(conn, f"correlation-{uuid.uuid4().hex[:6]}")
    answer = post_webhook(
        api, "touchpoints", tenant, touch(f"tp-{request_id}", "c-corr", "email", NOW), request_id=request_id
    )
    assert answer.status_code == 202 and answer.headers["x-request-id"] == request_id
    logs = sorted(Path(topology.config.logs_dir).glob("worker*.log"))

    def recompute_lines(wanted: str) -> list[dict[str, object]]:
        return [
            line
            for log in logs
            for line in json_lines(log)
            if wanted in str(line.get("request_id", "")).split(",") and "recompute" in str(line["message"])
        ]

    lines = eventually(lambda: recompute_lines(request_id), timeout_s=30, interval_s=0.3)
    assert all(line["tenant_id"] == str(tenant.tenant_id) for line in lines)
    assert not recompute_lines(other)
