"""Structured logs (app.core.logs): one JSON object a line, with the request and tenant when known."""

from __future__ import annotations

import json
import logging

from app.core import logs
from app.outbox.relay import correlated


def record(message: str, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("app.test", logging.WARNING, __file__, 1, message, (), info)


def test_a_line_is_json_with_the_context() -> None:
    request, tenant = logs.REQUEST_ID.set("req-1"), logs.TENANT_ID.set("t-1")
    try:
        line = json.loads(logs.JsonFormatter().format(record("relay pass failed")))
    finally:
        logs.REQUEST_ID.reset(request)
        logs.TENANT_ID.reset(tenant)
    assert line["message"] == "relay pass failed" and line["level"] == "WARNING" and line["logger"] == "app.test"
    assert (line["request_id"], line["tenant_id"]) == ("req-1", "t-1")
    assert line["ts"].endswith("+00:00")


def test_outside_a_request_there_is_no_id_and_exceptions_are_kept() -> None:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        line = json.loads(logs.JsonFormatter().format(record("failed", exc)))
    assert "request_id" not in line and "tenant_id" not in line
    assert "ValueError: boom" in line["exception"]


def test_a_callers_id_is_kept_only_when_it_is_a_short_token() -> None:
    assert logs.request_id_from("abc-123:x.y") == "abc-123:x.y"
    for junk in (None, "", "a b", "x" * 129, "id\nforged log line", "<script>"):
        made = logs.request_id_from(junk)
        assert made != junk and len(made) == 32


def test_the_relay_passes_the_request_id_as_a_header() -> None:
    assert correlated({"queue": "llm"}, {"job_id": "j", "request_id": "req-9"}) == {
        "queue": "llm",
        "headers": {"request_id": "req-9"},
    }
    assert correlated({"queue": "llm"}, {"job_id": "j"}) == {"queue": "llm"}  # work no request caused
