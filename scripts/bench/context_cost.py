"""What the signed tenant context (migration 0024) costs one LLM boundary call, in one run.

    python -m scripts.bench.context_cost [--rounds 6] [--calls 150] [--output artifacts/bench/context_cost.json]

One throwaway topology (api and worker stopped: the isolated condition of ``llm_boundary_bench``),
one tenant, provider-backed calls, and two states of the same database measured alternately,
``--rounds`` times each, the order flipping every round:

- ``signed``: the database at head: every policy verifies the context token (``app_current_context()``
  / ``app_current_tenant()`` in a sub-select), the LLM functions verify it in their bodies, and each
  unit of work sets the token.
- ``unsigned``: what 0024 replaced, restored by the bootstrap superuser for the measurement: the
  policies and ``app_current_tenant()``/``app_current_user()`` as 0024's downgrade leaves them
  (inline reads of two plain settings), and each unit of work sets those settings from the same
  token's fields instead.

Everything else (functions, indexes, the boundary's code and its round trips) is the same object
in both states, so the difference of the medians is the signed context's price. The database is
left signed, and the topology is thrown away. Exit 0 when it measured, 2 when the topology could not
be brought up, 3 when a call did not succeed as a provider-backed answer (the figures would
describe other work).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import Engine, create_engine, text

from app.core import db
from app.core.settings import to_sync_url
from app.core.tenancy import CONTEXT_GUC, LEGACY_TENANT_GUC, LEGACY_USER_GUC, TenantContext
from app.llm.boundary import Boundary
from app.tenants.service import create_tenant
from scripts.bench.llm_calls import mock_boundary
from scripts.bench.peers import run_identity
from scripts.harness import EXIT_CODES_HELP, REPO_ROOT, ExitCode, emit
from scripts.topology import Topology, TopologyConfig, TopologyError

VERSIONS = REPO_ROOT / "backend" / "alembic" / "versions"
FUNCTIONS = REPO_ROOT / "backend" / "sql" / "functions"
CONTEXT_FUNCTIONS = ("app_current_tenant", "app_current_user")
# The unsigned state's unit of work sets the two plain settings from the token's own fields (the
# same bound parameter), so both states send the same statements with the same values.
UNSIGNED_SET = db.pipelined(
    text(
        f"SELECT set_config('{LEGACY_TENANT_GUC}', split_part(:context, '.', 2), true), "
        f"set_config('{LEGACY_USER_GUC}', convert_from(decode(split_part(:context, '.', 3), 'hex'), 'UTF8'), true), "
        f"set_config('{CONTEXT_GUC}', '', true)"
    )
)


class CallFailed(RuntimeError):
    """A measured call was not a provider-backed success."""


def signing_migration() -> ModuleType:
    """Migration 0024 as a module: its policy texts and table lists are the two states' definitions."""
    spec = importlib.util.spec_from_file_location("signed_context", VERSIONS / "0024_signed_tenant_context.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def state_switcher(superuser: Engine) -> Callable[[str], None]:
    migration = signing_migration()
    functions = {
        "signed": [(FUNCTIONS / f"{name}.sql").read_text() for name in CONTEXT_FUNCTIONS],
        "unsigned": [(VERSIONS / "sql" / f"0024_downgrade_{name}.sql").read_text() for name in CONTEXT_FUNCTIONS],
    }
    policies = {
        "signed": (migration.TENANT, migration.USER),
        "unsigned": (migration.TENANT_BEFORE, migration.USER_BEFORE),
    }
    signed_set = db._SET_CONTEXT_PIPELINED

    def switch(state: str) -> None:
        tenant, user = policies[state]
        with superuser.connect() as conn:
            for body in functions[state]:
                conn.execute(text(body))  # CREATE OR REPLACE keeps owner and grants
            for table in migration.TENANT_TABLES:
                conn.execute(text(f"ALTER POLICY tenant_isolation ON {table} USING ({tenant}) WITH CHECK ({tenant})"))
            for table in migration.USER_TABLES:
                conn.execute(text(f"ALTER POLICY tenant_isolation ON {table} USING ({user}) WITH CHECK ({user})"))
        db._SET_CONTEXT_PIPELINED = signed_set if state == "signed" else UNSIGNED_SET

    return switch


def timed_calls(gate: Boundary, ctx: TenantContext, label: str, calls: int, warmup: int) -> list[float]:
    samples = []
    for n in range(warmup + calls):
        started = time.perf_counter()
        outcome = gate.call(ctx, "route", f"{label}-{n}", f"question {label} {n}")
        elapsed_ms = (time.perf_counter() - started) * 1000
        if outcome.status != "succeeded" or outcome.was_cached or not outcome.provider_attempted:
            raise CallFailed(f"{label}-{n}: {outcome.status} {outcome.blocked_reason or outcome.failure_reason or ''}")
        if n >= warmup:
            samples.append(elapsed_ms)
    return samples


def measure(rounds: int, calls: int, warmup: int, artifact_dir: Path) -> dict[str, Any]:
    config = TopologyConfig(artifact_dir=artifact_dir, name="bench-context-cost", stop_grace_s=2)
    by_state: dict[str, list[float]] = {"signed": [], "unsigned": []}
    with Topology(config) as topo:
        assert topo.dsns is not None
        # in the run's database: the statistics and policies are per database
        superuser = create_engine(to_sync_url(topo.superuser_url()), isolation_level="AUTOCOMMIT")
        switch = state_switcher(superuser)
        try:
            gate = mock_boundary(topo.dsns.runtime_sync, topo.mock_url)
            assert gate.engine is not None
            with gate.engine.begin() as conn:
                tenant = create_tenant(conn, "context-cost", user_id="bench")
            for service in ("api", "worker"):
                topo.stop_service(service)
            for index in range(rounds):
                for state in ("signed", "unsigned") if index % 2 == 0 else ("unsigned", "signed"):
                    switch(state)
                    samples = timed_calls(gate, tenant.context, f"{state}-{index}", calls, warmup)
                    by_state[state].append(round(statistics.median(samples), 3))
        finally:
            switch("signed")
            superuser.dispose()
    medians = {state: round(statistics.median(values), 3) for state, values in by_state.items()}
    return {
        "median_ms_by_round": by_state,
        "median_ms": medians,
        "signed_minus_unsigned_ms": round(medians["signed"] - medians["unsigned"], 3),
        "signed_over_unsigned": round(medians["signed"] / medians["unsigned"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6, help="rounds; each measures both states")
    parser.add_argument("--calls", type=int, default=150, help="measured calls per state and round")
    parser.add_argument("--warmup", type=int, default=15, help="calls after each switch, not counted")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "artifacts" / "bench" / "context_cost.json")
    args = parser.parse_args(argv)
    try:
        measured = measure(args.rounds, args.calls, args.warmup, args.output.parent / "context-cost-run")
    except (TopologyError, AssertionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    except CallFailed as exc:
        print(f"invalid measurement: {exc}", file=sys.stderr)
        return ExitCode.INVALID_MEASUREMENT
    result = {
        "name": "context_cost",
        "command": "python -m scripts.bench.context_cost",
        **run_identity(),
        "condition": "isolated: api and worker stopped, one caller, provider-backed calls of one tenant; wall time "
        "per boundary call (provider included, the same in both states)",
        "rounds": args.rounds,
        "calls_per_state_and_round": args.calls,
        **measured,
    }
    emit(result, args.output)
    return ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
