"""The fault verdicts at load, and the network-namespace topology they run on (scripts/faults/network.py,
scripts/topology/netns.py): each verdict fails on the loss it exists to catch, and a run's namespaces
are gone after it, also when the harness died without tearing down.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from sqlalchemy import Engine

from app.tenants.service import ProvisionedTenant
from app.webhooks.signatures import new_webhook_secret
from scripts.faults import broker, scenarios
from scripts.faults.clients import P99_LIMIT_MS, slowloris_problems
from scripts.faults.disk import disk_problems
from scripts.faults.network import HEAL_LIMIT_S, REQUEST_LIMIT_S, cut_window, partition, partition_problems
from scripts.faults.run_faults import FAULT_ENV
from scripts.faults.scenarios import generator_connections, judged, start_load, tenant_counts
from scripts.r3 import database
from scripts.r3.openloop import Outcome, RunRecord
from scripts.topology import Topology, TopologyConfig
from scripts.topology.lifecycle import RUN_DIR, cleanup_stale
from scripts.topology.netns import ROLES, NetnsPlan, existing_namespaces, namespace_name
from scripts.topology.postgres import kill_stale_cluster

from .conftest import TEST_STOP_GRACE_S, run_name

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def test_tenant_counts_catch_a_lost_and_a_doubled_event() -> None:
    stored = {"a": 1, "b": 1, "c": 1}
    assert tenant_counts({"a", "b", "c"}, stored) == {
        "acknowledged": 3,
        "persisted": 3,
        "lost": 0,
        "duplicated": 0,
        "stored_without_ack": 0,
    }
    assert tenant_counts({"a", "b", "c"}, {"a": 1, "b": 1})["lost"] == 1
    assert tenant_counts({"a", "b", "c"}, {**stored, "b": 2})["duplicated"] == 1
    assert tenant_counts({"a"}, stored)["stored_without_ack"] == 2  # committed, answer lost: not a loss


def test_the_partition_bounds_fail_a_hang_a_500_no_retry_after_and_a_slow_recovery() -> None:
    clean = {"answers_during_cut": {"503": 40, "202": 3}, "slowest_answer_s": 1.0}
    probes = [{"status": 503, "retry_after": "1", "s": 0.4}]
    assert partition_problems("api", clean, probes, 0.5) == []
    hung = {**clean, "slowest_answer_s": REQUEST_LIMIT_S + 1}
    assert "took" in partition_problems("api", hung, probes, 0.5)[0]
    with_500 = {**clean, "answers_during_cut": {"500": 1}}
    assert partition_problems("api", with_500, probes, 0.5) == ["a 500 during the cut"]
    assert "Retry-After" in partition_problems("api", clean, [{"status": 503, "retry_after": None}], 0.5)[0]
    assert "after the heal" in partition_problems("api", clean, probes, HEAL_LIMIT_S + 0.1)[0]
    assert "after the heal" in partition_problems("api", clean, probes, None)[0]
    # Cutting the worker must not cost the (still connected) api any acceptance.
    assert partition_problems("worker", {"answers_during_cut": {"202": 5}, "slowest_answer_s": 0.1}, [], 1.0) == []
    assert partition_problems("worker", clean, [], 1.0) != []


def test_the_cut_window_charges_the_api_from_when_the_request_was_sent() -> None:
    """A request answered 3 s after it was sent is within the bound; the controls: one that waited 4 s
    for a connection (an api that stopped accepting) and one answered 6 s after it had its
    connection both count as hung."""
    quick = Outcome(0, "valid", None, due_s=1.0, started_s=1.0, connected_s=1.0, done_s=4.0, status=503)
    window = cut_window(RunRecord(150.0, 10.0, [quick], 10.0, 10.0), cut_at=0.5, healed_at=10.5)
    assert window["slowest_answer_s"] == 3.0
    assert partition_problems("api", window, [{"status": 503, "retry_after": "1"}], 0.5) == []
    not_accepting = Outcome(1, "valid", None, due_s=1.0, started_s=1.0, connected_s=5.0, done_s=8.0, status=503)
    window = cut_window(RunRecord(150.0, 10.0, [quick, not_accepting], 10.0, 10.0), cut_at=0.5, healed_at=10.5)
    assert window["longest_wait_for_a_connection_s"] == 4.0
    assert "took 7.0 s" in partition_problems("api", window, [{"status": 503, "retry_after": "1"}], 0.5)[0]
    hung = Outcome(2, "valid", None, due_s=1.0, started_s=1.0, connected_s=1.0, done_s=7.0, status=503)
    window = cut_window(RunRecord(150.0, 10.0, [quick, hung], 10.0, 10.0), cut_at=0.5, healed_at=10.5)
    assert "took 6.0 s" in partition_problems("api", window, [{"status": 503, "retry_after": "1"}], 0.5)[0]


def test_the_load_never_queues_in_its_own_pool_while_the_api_holds_requests_to_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fault load's generator gets a pool of generator_connections(rate), not fire()'s default of
    256, which at 150 rps would queue requests while the api holds each for its deadline."""
    for rate in (30.0, 50.0, 150.0, 400.0):
        assert generator_connections(rate) >= rate * REQUEST_LIMIT_S
    given: dict[str, object] = {}

    async def recording_fire(*_args: object, **options: object) -> RunRecord:
        given.update(options)
        return RunRecord(150.0, 1.0, [], 1.0, 1.0, 0.0)

    tenant = ProvisionedTenant(uuid.uuid4(), "load", "key", new_webhook_secret())
    monkeypatch.setattr(scenarios, "fire", recording_fire)
    monkeypatch.setattr(scenarios.database, "provision_tenants", lambda *_args: [tenant])
    topology = cast(Topology, SimpleNamespace(api_url="http://127.0.0.1:9"))
    scenarios.start_load(topology, cast(Engine, None), 150.0, 1.0).join()
    assert given["connections"] == generator_connections(150.0)
    assert cast(int, given["connections"]) >= 150.0 * REQUEST_LIMIT_S  # the control: 256 would fail here


def test_slowloris_fails_a_slow_p99_and_a_flood_that_never_held() -> None:
    held = {"ends": {"held": 500}}
    assert slowloris_problems({"p99": P99_LIMIT_MS / 2}, held) == []
    assert "p99" in slowloris_problems({"p99": P99_LIMIT_MS}, held)[0]
    assert "never held" in slowloris_problems({"p99": 1.0}, {"ends": {"held": 499, "refused": 1}})[0]


def test_a_full_disk_must_show_as_503s_and_never_500() -> None:
    assert disk_problems({"202": 10, "503": 5}) == []
    assert "did not bite" in disk_problems({"202": 15})[0]  # the control: no fault, no pass
    assert disk_problems({"202": 10, "503": 5, "500": 1}) == ["1 answers of 500 while the disk was full"]


def test_the_broker_scenario_says_why_it_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(broker.BROKER_ENV, "amqp://user:secret@rabbit.example:5672/x")
    why = broker.unavailable()
    assert why is not None and "remote" in why and "secret" not in why
    monkeypatch.delenv(broker.BROKER_ENV)
    monkeypatch.setattr("shutil.which", lambda _: None)
    assert broker.unavailable() == "no RabbitMQ here (rabbitmqctl not found)"


def test_a_plan_names_everything_after_the_run_within_interface_limits() -> None:
    plan = NetnsPlan("faults-netns-some-long-worker-name", "10.213.7")
    assert {plan.namespace(role) for role in ROLES} == {
        namespace_name(plan.run_name, role) for role in ("pg", "api", "worker")
    }
    assert all(len(plan.host_interface(role)) <= 15 for role in ROLES)  # IFNAMSIZ
    assert len({plan.host_interface(role) for role in ROLES}) == 3
    addresses = [plan.harness_ip, plan.postgres_ip, *(plan.host_link_ip(r) for r in ROLES)]
    addresses += [ip for role in ("api", "worker") for ip in plan.db_link_ips(role)]
    assert len(set(addresses)) == len(addresses) and all(ip.startswith("10.213.7.") for ip in addresses)
    assert NetnsPlan.from_record(plan.run_name, plan.as_record()) == plan  # what attach reads back


@needs_root
def test_a_crashed_runs_namespaces_are_removed_by_the_next_cleanup() -> None:
    """The harness died after creating the namespaces (nothing tore them down): its state file is
    all the next run has, and cleanup_stale deletes the namespaces and links by the run's name."""
    name = run_name("netns-crash")
    plan = NetnsPlan.choose(name)
    state = RUN_DIR / f"{name}.json"
    plan.create()
    try:
        assert {plan.namespace(role) for role in ROLES} <= set(existing_namespaces())
        RUN_DIR.mkdir(mode=0o700, exist_ok=True)
        state.write_text(json.dumps({"name": name, "processes": {}, "netns": plan.as_record()}))
        found = cleanup_stale(state)
        assert sorted(found["namespaces"]) == sorted(plan.namespace(role) for role in ROLES)
        assert not {plan.namespace(role) for role in ROLES} & set(existing_namespaces())
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
        assert plan.host_interface("pg") not in links
    finally:
        plan.remove()
        state.unlink(missing_ok=True)


@needs_root
def test_a_killed_runs_wal_tmpfs_is_unmounted_with_its_cluster(tmp_path: Path) -> None:
    """The disk scenario mounts a tmpfs inside the cluster's directory; if the harness dies there, the
    cleanup that deletes the directory unmounts it first (no mount outlives the run)."""
    cluster = Path(tempfile.mkdtemp(prefix="attrib-pg-"))
    mount = cluster / "wal-tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        kill_stale_cluster(cluster / "data", None, None)
        assert str(mount) not in Path("/proc/self/mounts").read_text()
        assert not cluster.exists()
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


@pytest.fixture(scope="module")
def netns_topology(test_artifacts: Path) -> Iterator[Topology]:
    config = TopologyConfig(
        artifact_dir=test_artifacts / run_name("topology-netns"),
        name=run_name("pytest-netns"),
        stop_grace_s=TEST_STOP_GRACE_S,
        extra_env=FAULT_ENV,
        netns=True,
    )
    with Topology(config) as topo:
        yield topo
    assert not {namespace_name(config.name, role) for role in ROLES} & set(existing_namespaces())


def namespace_of(pid: int) -> str:
    return subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True, text=True).stdout.strip()


@needs_root
@pytest.mark.integration
def test_every_service_runs_in_its_namespace_and_talks_over_the_links(netns_topology: Topology) -> None:
    plan = netns_topology.netns
    assert plan is not None and netns_topology.embedded is not None
    for service, role in (("api", "api"), ("worker", "worker")):
        pid = netns_topology.processes[service].pid
        assert pid is not None and namespace_of(pid) == plan.namespace(role)
    assert namespace_of(netns_topology.embedded.pid() or 0) == plan.namespace("pg")
    sockets = subprocess.run(
        ["ip", "netns", "exec", plan.namespace("pg"), "ss", "-Htn", "state", "established"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    peers = {line.split()[-1].rsplit(":", 1)[0] for line in sockets.splitlines() if f"{plan.postgres_ip}:5432" in line}
    assert plan.db_link_ips("api")[0] in peers and plan.db_link_ips("worker")[0] in peers
    attached = Topology.attach(netns_topology.config.name)  # how the gates reach a running topology
    assert (attached.api_url, attached.mock_url) == (netns_topology.api_url, netns_topology.mock_url)


@needs_root
@pytest.mark.integration
def test_a_deleted_acknowledged_event_fails_the_verdict(netns_topology: Topology) -> None:
    """The negative control every webhook scenario carries, on its own: a clean load passes, and one
    acknowledged event deleted behind the harness's back fails the same verdict with one lost."""
    assert netns_topology.dsns is not None
    engine = database.runtime_engine(netns_topology.dsns.runtime_sync)
    try:
        load = start_load(netns_topology, engine, 20, 4)
        result = judged("control", netns_topology, engine, load, load.join(), 0.0, 60)
    finally:
        engine.dispose()
    assert result.acknowledged > 0 and result.lost == 0
    assert result.details["negative_control"] == {
        "caught": True,
        "deleted": 1,
        "control_status": "failed",
        "control_lost": 1,
    }


@needs_root
@pytest.mark.integration
def test_cutting_the_worker_off_loses_nothing_and_it_serves_again(netns_topology: Topology) -> None:
    assert netns_topology.dsns is not None
    engine = database.runtime_engine(netns_topology.dsns.runtime_sync)
    try:
        result = partition("worker")(netns_topology, engine, 30, 12)
    finally:
        engine.dispose()
    assert result.status == "passed", result.as_dict()
    assert result.details["sent_during_cut"] > 0 and result.recovery_s is not None
