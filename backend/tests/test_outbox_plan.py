"""The relay's dispatch plan: recomputes coalesce per tenant; jobs go one by one with their limits."""

from __future__ import annotations

from types import SimpleNamespace

from app.outbox.relay import DEADLINE_GRACE_S, RECOMPUTE_REQUEST_IDS_MAX, RECOMPUTE_TASK, RUN_JOB_TASK, plan


def row(id_: int, tenant: str, kind: str = "attribution_recompute", payload: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(id=id_, tenant_id=tenant, kind=kind, payload=payload or {})


def test_recomputes_coalesce_to_one_message_per_tenant() -> None:
    dispatches = plan([row(1, "a"), row(2, "b"), row(3, "a"), row(7, "a")]).dispatches
    recomputes = {d.args[0]: d for d in dispatches if d.task == RECOMPUTE_TASK}
    assert set(recomputes) == {"a", "b"}
    assert recomputes["a"].args == ["a", 7] and sorted(recomputes["a"].outbox_ids) == [1, 3, 7]
    assert recomputes["b"].args == ["b", 2]


def test_a_recompute_names_the_webhooks_it_covers() -> None:
    """The request ids of the rows a recompute covers travel as its header, comma separated, capped;
    rows without one (older rows, the control) add nothing, and a tenant with none gets no header."""
    dispatches = plan(
        [row(1, "a", payload={"request_id": "r1"}), row(2, "a"), row(3, "a", payload={"request_id": "r3"}), row(4, "b")]
    ).dispatches
    recomputes = {d.args[0]: d for d in dispatches}
    assert recomputes["a"].options == {"queue": "attribution", "headers": {"request_id": "r1,r3"}}
    assert recomputes["b"].options == {"queue": "attribution"}
    many = plan([row(i, "c", payload={"request_id": f"r{i}"}) for i in range(RECOMPUTE_REQUEST_IDS_MAX + 5)])
    headers = many.dispatches[0].options["headers"]
    assert len(headers["request_id"].split(",")) == RECOMPUTE_REQUEST_IDS_MAX
    assert headers["request_ids_omitted"] == 5


def test_jobs_carry_their_limits_and_zero_soft_means_none() -> None:
    jobs = plan(
        [
            row(5, "a", "attribution_job", {"job_id": "j1", "time_limit_s": 300, "soft_time_limit_s": 270}),
            row(6, "a", "attribution_job", {"job_id": "j2", "time_limit_s": 3, "soft_time_limit_s": 0}),
        ]
    ).dispatches
    assert [d.task for d in jobs] == [RUN_JOB_TASK, RUN_JOB_TASK]
    assert jobs[0].options == {"queue": "attribution", "time_limit": 300.0, "soft_time_limit": 270.0}
    assert jobs[1].options == {"queue": "attribution", "time_limit": 3.0}
    assert jobs[1].args == ["a", "j2", 3.0 + DEADLINE_GRACE_S]


def test_a_malformed_row_is_set_aside_and_the_rest_still_go() -> None:
    """A row whose payload lacks what its kind needs (planted by hand, or a bug) must not stop the
    relay for every row behind it: it is set aside (marked, logged) and the others are planned."""
    planned = plan(
        [
            row(1, "a", "llm_task", {"job_id": "j1"}),  # no user_id, no task_type
            row(2, "a", "attribution_job", {"job_id": "j2", "time_limit_s": "soon", "soft_time_limit_s": 0}),
            row(3, "b", "llm_task", {"job_id": "j3", "user_id": "u", "task_type": "anomaly_investigation"}),
            row(4, "b"),
        ]
    )
    assert planned.malformed == [1, 2]
    assert sorted(i for d in planned.dispatches for i in d.outbox_ids) == [3, 4]


def test_control_well_formed_rows_set_nothing_aside() -> None:
    planned = plan([row(3, "b", "llm_task", {"job_id": "j3", "user_id": "u", "task_type": "anomaly_investigation"})])
    assert planned.malformed == []
    assert planned.dispatches[0].args == ["b", "u", "j3"]


def test_migrations_create_every_worker_queue_row() -> None:
    """The queue rows the broker needs exist before any process starts (see migration 0006)."""
    import importlib.util

    from app.worker.queues import QUEUES
    from scripts.harness import REPO_ROOT

    path = REPO_ROOT / "backend" / "alembic" / "versions" / "0006_broker_queue_rows.py"
    spec = importlib.util.spec_from_file_location("queue_rows", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.QUEUES) == set(QUEUES)
