"""Compose mode without running it: the file parses under Compose v1 and v2 (where installed), the
orchestrator refuses shapes the file cannot run, passwords reach Compose by environment only, a
container's record holds no configuration, and a run killed outright is taken down by the next one.

Running the topology itself is ``nox -s compose`` (it needs a Docker engine and several minutes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from scripts.harness import REPO_ROOT
from scripts.phase8 import run_phase8_closure_pack
from scripts.phase8.evidence import scan_for_secrets
from scripts.topology.compose import (
    COMPOSE_FILE,
    COMPOSE_VARIABLES,
    ComposeImages,
    ComposeTopology,
    ContainerProcess,
    container_record,
    project_name,
)
from scripts.topology.lifecycle import PRIVILEGED_ENV, Topology, TopologyConfig, TopologyError, cleanup_stale

PLACEHOLDERS = {name: "placeholder" for name in COMPOSE_VARIABLES if not name.startswith("E2E_")}


def compose_cli(version: str) -> list[str] | None:
    """The CLI of that Compose major version, when it is installed here."""
    if version == "v1":
        return ["docker-compose"] if shutil.which("docker-compose") else None
    if shutil.which("docker") is None:
        return None
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return ["docker", "compose"] if probe.returncode == 0 else None


def config_check(cli: list[str], path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(shutil.which(cli[0]) or "/usr/bin").parent) + ":/usr/bin:/bin", **PLACEHOLDERS}
    env["HOME"] = str(tmp_path)  # no user-level Docker config takes part
    return subprocess.run(
        [*cli, "-p", "configcheck", "-f", str(path), "config", "-q"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_compose_file_parses(version: str, tmp_path: Path) -> None:
    cli = compose_cli(version)
    if cli is None:
        pytest.skip(
            f"Compose {version} is not installed here ({'docker-compose' if version == 'v1' else 'docker compose'})"
        )
    result = config_check(cli, COMPOSE_FILE, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_config_check_rejects_a_broken_file(version: str, tmp_path: Path) -> None:
    """Negative control: the same check fails on a file with an unknown service key."""
    cli = compose_cli(version)
    if cli is None:
        pytest.skip(f"Compose {version} is not installed here")
    broken = REPO_ROOT / f".compose-config-check-{tmp_path.name}.yml"  # beside the file: `build: .` resolves
    broken.write_text(COMPOSE_FILE.read_text().replace("  worker:\n", "  worker:\n    restart_policy_typo: always\n"))
    try:
        result = config_check(cli, broken, tmp_path)
    finally:
        broken.unlink()
    assert result.returncode != 0
    assert "restart_policy_typo" in result.stderr


def test_project_names_are_valid_for_compose() -> None:
    assert project_name("Phase8.Compose", "AB12") == "phase8-compose-ab12"


def test_orchestrator_refuses_what_the_file_cannot_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_phase8_closure_pack.main(["--topology", "compose", "--worker-replicas", "2"])
    assert exit_info.value.code == 2
    assert "compose file's shape" in capsys.readouterr().err


def test_netns_mode_refuses_an_external_server_and_sets_the_topology_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_phase8_closure_pack.main(["--topology", "netns", "--admin-database-url", "postgresql://x@h/db"])
    assert exit_info.value.code == 2
    assert "moves the embedded server" in capsys.readouterr().err
    parser_defaults = {"topology_name": "unit", "admin_database_url": None, "api_processes": 1, "worker_replicas": 1}
    made = run_phase8_closure_pack.make_topology(
        SimpleNamespace(topology="netns", **parser_defaults, broker_url=None), tmp_path
    )  # type: ignore[arg-type]
    assert type(made) is Topology and made.config.netns
    native = run_phase8_closure_pack.make_topology(
        SimpleNamespace(topology="native", **parser_defaults, broker_url=None), tmp_path
    )  # type: ignore[arg-type]
    assert not native.config.netns  # the control: the default mode stays on loopback


def compose_topology(tmp_path: Path) -> ComposeTopology:
    topology = ComposeTopology(TopologyConfig(artifact_dir=tmp_path, name="compose-unit"), ComposeImages())
    topology.ports = {"postgres": 15432, "api": 18000, "mock_platform": 18081}
    return topology


def test_passwords_reach_compose_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATION_DATABASE_URL", "postgresql://app_owner:leaked@elsewhere/db")
    topology = compose_topology(tmp_path)
    env = topology.compose_env()
    assert env["APP_USER_PASSWORD"] == topology.passwords.runtime
    assert env["POSTGRES_PASSWORD"] == topology.postgres_password
    assert not set(PRIVILEGED_ENV) & set(env)  # the operator's privileged DSNs never pass through
    assert topology.postgres_password in topology.secrets()  # so the hygiene scan looks for it too


def test_hygiene_scan_finds_a_compose_log_leak(tmp_path: Path) -> None:
    """The scan covers what compose mode writes (logs/compose.log, the followed service logs)."""
    topology = compose_topology(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "compose.log").write_text("Creating network p8_default\n")
    assert scan_for_secrets(tmp_path, topology.secrets()) == []
    (logs / "postgres.log").write_text(f"FATAL: password {topology.postgres_password} rejected\n")
    assert [str(f) for f in scan_for_secrets(tmp_path, topology.secrets())] == ["logs/postgres.log:1: run_secret"]


class FakeContainer(SimpleNamespace):
    pass


def test_container_record_holds_no_configuration(tmp_path: Path) -> None:
    attrs: dict[str, Any] = {
        "Config": {"Image": "attribution-backend:e2e", "Env": ["APP_USER_PASSWORD=s3cret-value"]},
        "Image": "sha256:abc",
        "State": {"Status": "running", "Health": {"Status": "healthy"}, "ExitCode": 0, "Pid": 42},
        "RestartCount": 0,
    }
    container = FakeContainer(id="c0ffee", name="p8_api_1", attrs=attrs)
    client = SimpleNamespace(containers=SimpleNamespace(get=lambda _id: container))
    proc = ContainerProcess("api", [], {}, REPO_ROOT, tmp_path / "api.log", container_id="c0ffee", client=client)
    record = container_record(proc)
    assert record["health"] == "healthy" and record["image"] == "attribution-backend:e2e" and record["pid"] == 42
    assert "s3cret-value" not in json.dumps(record)


@pytest.mark.parametrize(("command", "taken_down"), [(["true"], True), (["false"], False)])
def test_a_killed_compose_run_is_taken_down_by_the_next(tmp_path: Path, command: list[str], taken_down: bool) -> None:
    """cleanup_stale hands a recorded compose project to `down -v` and forgets it; a failed `down` says so."""
    state = tmp_path / "stale.json"
    state.write_text(
        json.dumps(
            {"mode": "compose", "compose_project": "p8-stale", "compose_command": command, "logs_dir": str(tmp_path)}
        )
    )
    found = cleanup_stale(state)
    assert found == {"found": True, "compose_project": "p8-stale", "taken_down": taken_down}
    assert not state.exists()
    assert "down -v" in (tmp_path / "compose.log").read_text()


def test_the_p4_gate_runs_on_compose_as_the_seed_says(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The P4 workflow runs `nox -s p4_e2e -- --topology compose`; the script picks the compose
    topology for it and the native one by default (the control), and refuses an external server."""
    from scripts.ci import p4_e2e

    workflow = (REPO_ROOT / ".github" / "workflows" / "b07-p4-e2e-operational-readiness.yml").read_text()
    assert "nox -s p4_e2e -- --topology compose" in workflow
    compose = SimpleNamespace(topology="compose", admin_database_url=None, postgres_image=None, python_base_image=None)
    assert type(p4_e2e.make_topology(compose, tmp_path)) is ComposeTopology  # type: ignore[arg-type]
    native = SimpleNamespace(topology="native", admin_database_url=None)
    assert type(p4_e2e.make_topology(native, tmp_path)) is Topology  # type: ignore[arg-type]
    with pytest.raises(SystemExit) as exit_info:
        p4_e2e.main(["--topology", "compose", "--admin-database-url", "postgresql://x@h/db"])
    assert exit_info.value.code == 2
    assert "its own PostgreSQL" in capsys.readouterr().err


def test_compose_passes_only_its_tunables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault scenarios shorten the redispatch delay in compose mode as natively; an operator's shell
    does not set it for them (the control), and a setting the file would drop is refused, not ignored."""
    monkeypatch.setenv("OUTBOX_REDISPATCH_AFTER_S", "999")
    assert "OUTBOX_REDISPATCH_AFTER_S" not in compose_topology(tmp_path).compose_env()
    config = TopologyConfig(artifact_dir=tmp_path, name="compose-unit", extra_env={"OUTBOX_REDISPATCH_AFTER_S": "10"})
    tuned = ComposeTopology(config, ComposeImages())
    tuned.ports = {"postgres": 15432, "api": 18000, "mock_platform": 18081}
    assert tuned.compose_env()["OUTBOX_REDISPATCH_AFTER_S"] == "10"
    with pytest.raises(TopologyError, match="not LLM_TIMEOUT_S"):
        ComposeTopology(TopologyConfig(artifact_dir=tmp_path, name="c", extra_env={"LLM_TIMEOUT_S": "2"}))


def test_compose_faults_run_the_crash_scenarios_only(capsys: pytest.CaptureFixture[str]) -> None:
    """docker kill has a native twin for the worker and api crashes; a scenario it cannot run is a usage error."""
    from scripts.faults import run_faults

    assert set(run_faults.COMPOSE_SCENARIOS) <= set(run_faults.ALL_SCENARIOS)
    with pytest.raises(SystemExit) as exit_info:
        run_faults.main(["--topology", "compose", "--scenario", "postgres_crash"])
    assert exit_info.value.code == 2
    assert "not postgres_crash" in capsys.readouterr().err


def test_nox_compose_runs_the_kill_faults_on_the_image_it_built(tmp_path: Path) -> None:
    from scripts.compose.__main__ import faults_argv

    args = SimpleNamespace(faults_dir=tmp_path / "faults")
    argv = faults_argv(args, ComposeImages(postgres="local/pg:15", python_base="local/py:3.11"))  # type: ignore[arg-type]
    assert argv[1].endswith("scripts/faults/run_faults.py")
    assert argv[2:] == [
        "--topology",
        "compose",
        "--no-build",
        "--artifact-dir",
        str(tmp_path / "faults"),
        "--postgres-image",
        "local/pg:15",
        "--python-base-image",
        "local/py:3.11",
    ]


@pytest.mark.parametrize("reachable", [True, False])
def test_a_host_with_a_registry_keeps_the_files_images(
    reachable: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--images auto`: where Docker Hub answers, no build argument is passed (postgres:16 and
    python:3.11-slim, as the file says); where it does not (the control), local images and a wheelhouse."""
    from scripts.compose import __main__ as compose_main

    local = ComposeImages(
        postgres="attribution-local/postgres:15-bookworm", python_base="attribution-local/python:3.11"
    )
    built: list[str] = []
    monkeypatch.setattr(compose_main, "registry_reachable", lambda: reachable)
    monkeypatch.setattr(compose_main, "local_images", lambda _log: built.append("images") or local)
    monkeypatch.setattr(compose_main, "ensure_wheelhouse", lambda _py, _log: built.append("wheelhouse"))
    images = compose_main.choose_images("auto", tmp_path)
    if reachable:
        assert images.env() == {} and built == []
    else:
        assert images.env() == {"POSTGRES_IMAGE": local.postgres, "PYTHON_BASE_IMAGE": local.python_base}
        assert built == ["images", "wheelhouse"]


class KillableContainer:
    """A container as the Docker SDK shows it, whose kill() stops it (or does not)."""

    def __init__(self, stops: bool = True, fails: bool = False) -> None:
        self.running, self.stops, self.fails = True, stops, fails
        self.attrs: dict[str, Any] = {"State": {"Running": True, "StartedAt": "2026-12-06T20:07:00Z"}}

    def kill(self) -> None:
        if self.fails:
            raise RuntimeError("409 Conflict: container is not running")
        if self.stops:
            self.attrs = {"State": {"Running": False, "ExitCode": 137, "StartedAt": "2026-12-06T20:07:00Z"}}


def killable(tmp_path: Path, container: KillableContainer) -> ContainerProcess:
    client = SimpleNamespace(containers=SimpleNamespace(get=lambda _id: container))
    return ContainerProcess("worker", [], {}, REPO_ROOT, tmp_path / "worker.log", container_id="c", client=client)


def test_a_docker_kill_is_waited_for_and_recorded(tmp_path: Path) -> None:
    proc = killable(tmp_path, KillableContainer())
    proc.kill()
    assert proc.crashes == [{"started_at": "2026-12-06T20:07:00Z", "exit_code": 137}]


@pytest.mark.parametrize("container", [KillableContainer(fails=True), KillableContainer(stops=False)])
def test_a_kill_that_did_not_happen_fails_the_scenario(
    container: KillableContainer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controls: an engine error, or a container still running afterwards, raises; nothing is recorded."""
    monkeypatch.setattr("scripts.topology.compose.KILL_WAIT_S", 0.3)
    proc = killable(tmp_path, container)
    with pytest.raises((RuntimeError, TopologyError)):
        proc.kill()
    assert proc.crashes == []


def write_probe(path: Path, image_id: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"compose": {"containers": {"api": {"image_id": image_id}}}}))


@pytest.mark.parametrize(("faulted_image", "expected"), [("sha256:same", 0), ("sha256:other", 1), (None, 1)])
def test_the_kill_faults_must_run_on_the_image_the_gates_passed_on(
    faulted_image: str | None, expected: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--no-build` reuses a tag another checkout may have rebuilt: a passing fault run on another image
    (or one that recorded none) fails `ci`; a stale summary is removed before the run."""
    from scripts.compose import __main__ as compose_main

    args = SimpleNamespace(artifact_dir=tmp_path / "gates", faults_dir=tmp_path / "faults")
    write_probe(args.artifact_dir / compose_main.PROBE, "sha256:same")
    stale = args.faults_dir / "faults_summary.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"status": "passed"}')

    def fake_faults(_argv: list[str]) -> int:
        assert not stale.exists()
        if faulted_image:
            write_probe(args.faults_dir / "compose" / compose_main.PROBE, faulted_image)
        return 0

    monkeypatch.setattr(compose_main, "run_child", fake_faults)
    assert compose_main.run_faults(args, ComposeImages()) == expected  # type: ignore[arg-type]
