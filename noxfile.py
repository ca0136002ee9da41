"""Every job is a nox session; the Makefile only bootstraps nox and calls these."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "typecheck", "tests"]

PYTHON = "3.11"
LOCK = "requirements.lock"


def install_locked(session: nox.Session) -> None:
    """The pinned lock, then the project itself (editable, no dependency resolution of its own)."""
    session.install("-r", LOCK)
    session.install("--no-deps", "-e", ".")


def split_marker(args: list[str], marker: str) -> tuple[list[str], list[str]]:
    """pytest ARGS as two runs, without and with ``marker``; a ``-m EXPR`` among them narrows both."""
    rest, expression = list(args), None
    if "-m" in rest:
        at = rest.index("-m")
        expression = rest[at + 1]
        del rest[at : at + 2]
    narrowed = f"({expression}) and " if expression else ""
    return [*rest, "-m", f"{narrowed}not {marker}"], [*rest, "-m", f"{narrowed}{marker}"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """pytest on two xdist workers, one test file per worker at a time (each worker brings up its own
    topology), then the ``timing`` tests alone: a latency compared while the other worker runs an
    integration suite measures the neighbour. ``nox -s tests -- ARGS`` hands ARGS to both runs (a
    file, ``-k expr``, ``-m expr``); a run that selects nothing (pytest's exit 5) is not a failure."""
    install_locked(session)
    parallel, alone = split_marker(session.posargs, "timing")
    # --durations: the slowest tests of each run in the log, where CI's time budget goes
    session.run("pytest", "-n", "2", "--dist", "loadfile", "--durations=15", *parallel, success_codes=[0, 5])
    session.run("pytest", "--durations=5", *alone, success_codes=[0, 5])


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    install_locked(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy (strict) on backend/app and scripts."""
    install_locked(session)
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks; each writes artifacts/bench/<name>.json and prints its figures."""
    install_locked(session)
    for bench_module in ("topology_bench", "llm_boundary_bench", "queue_honesty"):
        session.run("python", "-m", f"scripts.bench.{bench_module}", *session.posargs)


# The peer benchmark's SDK, pinned here only: never in requirements.lock or the project's
# dependencies. Installed against the lock as constraints, so this virtualenv keeps the product's pins.
PEER_SDK = ("litellm==1.106.2", "openai==2.54.0")


@nox.session(python=PYTHON)
def bench_peers(session: nox.Session) -> None:
    """The LLM boundary against a direct call and LiteLLM's SDK, live topology, 1 and 8 callers
    -> artifacts/bench/peers.json (``-- --help`` for the options)."""
    install_locked(session)
    session.install(*PEER_SDK, "-c", LOCK)
    session.run("python", "-m", "scripts.bench.peers", *session.posargs)


@nox.session(python=PYTHON)
def topology(session: nox.Session) -> None:
    """The native topology CLI: ``nox -s topology -- up|down|status [--help]``."""
    install_locked(session)
    session.run("python", "-m", "scripts.topology", *(session.posargs or ["--help"]))


def closure_pack(session: nox.Session, *mode: str) -> None:
    install_locked(session)
    if "compose" in session.posargs:  # `-- --topology compose`: the Docker SDK collects logs and state
        session.install(DOCKER_SDK)
    session.run(
        "python",
        "scripts/phase8/run_phase8_closure_pack.py",
        *mode,
        "--artifact-dir",
        "artifacts/b07-phase8",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def phase8(session: nox.Session) -> None:
    """The Phase 8 closure pack, default mode (EG3.4 load profile)."""
    closure_pack(session)


@nox.session(python=PYTHON)
def ci_subset(session: nox.Session) -> None:
    """The closure pack's CI subset: functional gates, null benchmark + sanity load."""
    closure_pack(session, "--ci-subset")


@nox.session(python=PYTHON)
def full_physics(session: nox.Session) -> None:
    """The closure pack plus the capacity sweep, then the fault scenarios (-> artifacts/faults/) and the
    scale-out shape (-> artifacts/b07-phase8-scale-out/)."""
    closure_pack(session, "--full-physics")
    session.run("python", "scripts/faults/run_faults.py")
    scale_out(session)


@nox.session(python=PYTHON)
def scale_out(session: nox.Session) -> None:
    """The CI subset with two api processes and two workers; on RabbitMQ when PHASE8_BROKER_URL names one."""
    install_locked(session)
    session.run(
        "python",
        "scripts/phase8/run_phase8_closure_pack.py",
        "--ci-subset",
        "--api-processes",
        "2",
        "--worker-replicas",
        "2",
        "--topology-name",
        "phase8-scale-out",
        "--artifact-dir",
        "artifacts/b07-phase8-scale-out",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def contract(session: nox.Session) -> None:
    """The committed OpenAPI contract: ``nox -s contract -- export`` rewrites it, ``-- check`` finds drift."""
    install_locked(session)
    session.run("python", "-m", "scripts.contract", *(session.posargs or ["check"]))


@nox.session(python=PYTHON)
def p4_e2e(session: nox.Session) -> None:
    """The P4 gate: topology, health waits, the LLM E2E test, the ops queries -> artifacts/b07-p4/
    (``-- --topology compose``: on docker-compose.e2e.yml, as the seed's workflow runs it)."""
    install_locked(session)
    if "compose" in session.posargs:  # the Docker SDK collects the containers' logs and state
        session.install(DOCKER_SDK)
    session.run("python", "scripts/ci/p4_e2e.py", *session.posargs)


@nox.session(python=PYTHON)
def faults(session: nox.Session) -> None:
    """Fault scenarios under load (kill -9 worker and api, PostgreSQL restart, crash and full disk, LLM
    provider faults, slowloris; partitions in the network-namespace topology, as root; RabbitMQ
    restart where one runs locally) -> artifacts/faults/faults_summary.json; ``-- --scenario NAME``
    runs one, ``-- --help`` explains."""
    install_locked(session)
    session.run("python", "scripts/faults/run_faults.py", *session.posargs)


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """Steady storm-mix ingest plus LLM load for ``-- --minutes N`` (default 30), judged on growth after
    the warm-up -> artifacts/soak/soak_summary.json and soak.svg; ``-- --housekeeping off`` is the
    control (tables grow); ``-- --help`` explains. CI runs ``-- --minutes 3``."""
    install_locked(session)
    session.run("python", "-m", "scripts.soak", *session.posargs)


DOCKER_SDK = "docker==7.2.0"  # in pyproject's dev group, not in the lock: only compose mode needs it


@nox.session(python=PYTHON)
def compose(session: nox.Session) -> None:
    """The closure pack's CI subset in compose mode (docker-compose.e2e.yml on a Docker engine): starts
    dockerd when none answers (root) and stops only that one, builds or reuses the images (local ones
    from Debian's packages when no registry answers), verifies the manifest, then ``docker kill``s the
    worker and the api under load (nothing acknowledged lost). ``-- --help`` explains;
    ``-- ci --images local -- --gate eg8_1_topology`` narrows it.
    -> artifacts/b07-phase8-compose/, artifacts/compose-faults/faults_summary.json"""
    install_locked(session)
    session.install(DOCKER_SDK)
    session.run("python", "-m", "scripts.compose", *(session.posargs or ["ci"]))
