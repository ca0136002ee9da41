"""One side of ``scripts/ci/ab_interleaved.py``: drives one commit's LLM boundary, in blocks, on request.

Run by the coordinator with the side's own interpreter and its checkout as the working directory,
which is first on the import path (``python -c``), so every import below is the side's code: its
topology, its boundary, its migrations. A commit from before the project installed as a package
finds its ``app`` only after ``import scripts`` (which put ``backend/`` on the path then), so the
``app`` imports come second, inside the functions. This file itself is only the protocol, and it
holds to what every commit the A/B may compare has had since the boundary existed
(``scripts.topology``, ``app.llm.boundary``, ``scripts.bench.llm_calls.mock_boundary``,
``tenant_transaction_sync``); ``create_tenant`` moved with the domain layout, so both homes are
tried.

Protocol, one JSON document per line:

- on start: the side's topology comes up, the api and worker stop (``llm_boundary_bench``'s isolated
  condition), a tenant is made, ``--warmup`` calls are made; then ``{"ready": true, "commit": ...}``.
- ``{"calls": N}`` -> N provider-backed boundary calls one after another, then N reference units,
  and ``{"overhead_ms": [...], "units_ms": [...], "reference_ms": [...]}``: per call, its wall time
  minus the provider latency in its own ledger row (the bench's definition of overhead), and the
  wall time of each of its units of work (admission, settle); per reference unit (one tenant unit of
  work running ``SELECT 1``, as in ``llm_boundary_bench``), its wall time. The units tell where a
  difference lies: in the boundary's own statements, or in what every unit of work pays.
- ``{"quit": true}`` or end of input -> the topology is torn down.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text

from scripts.bench.llm_calls import mock_boundary
from scripts.topology import Topology, TopologyConfig

LATENCIES = text("SELECT id, latency_ms FROM llm_api_calls WHERE id = ANY(CAST(:ids AS uuid[]))")


class Protocol:
    """The answer channel: the process's original standard output, kept for the protocol alone.
    Everything else that would write there (a print in the side's code, a child process of its
    topology) is sent to standard error instead, so a stray line cannot pass for an answer."""

    channel: IO[str] | None = None

    @classmethod
    def claim_stdout(cls) -> None:
        cls.channel = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)  # fd 1, inherited by children, is now standard error
        sys.stdout = sys.stderr


def reply(document: dict[str, Any]) -> None:
    channel = Protocol.channel or sys.stdout
    channel.write(json.dumps(document) + "\n")
    channel.flush()


class UnitTimer:
    """Times each unit of work the boundary opens, by wrapping the function its module imported for
    them: ``statement_sync`` (one statement carrying its own context), ``tenant_statement_sync``
    (the context and one statement) or, in a commit from before both, ``tenant_pipeline_sync`` (a
    block). ``reference`` runs ``SELECT 1`` as one tenant unit of work of the kind the commit has."""

    def __init__(self) -> None:
        import app.core.db as db
        import app.llm.boundary as boundary_module

        self.units: list[float] = []
        self.boundary = boundary_module
        self.wrapped = next(
            name
            for name in ("statement_sync", "tenant_statement_sync", "tenant_pipeline_sync")
            if hasattr(boundary_module, name)
        )
        self.opened: Any = getattr(boundary_module, self.wrapped)  # which one is known only at run time
        self.one_statement = hasattr(db, "tenant_statement_sync")
        self.reference_unit: Any = getattr(
            db, "tenant_statement_sync" if self.one_statement else "tenant_pipeline_sync"
        )

    def statement(self, *args: Any, **kwargs: Any) -> list[Any]:
        started = time.perf_counter()
        rows: list[Any] = self.opened(*args, **kwargs)
        self.units.append((time.perf_counter() - started) * 1000)
        return rows

    @contextmanager
    def block(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        started = time.perf_counter()
        with self.opened(*args, **kwargs) as unit:
            yield unit
        self.units.append((time.perf_counter() - started) * 1000)

    def install(self) -> None:
        wrapper = self.block if self.wrapped == "tenant_pipeline_sync" else self.statement
        setattr(self.boundary, self.wrapped, wrapper)

    def reference(self, ctx: Any, engine: Any, sql: str) -> float:
        started = time.perf_counter()
        if self.one_statement:
            self.reference_unit(ctx, sql, {}, engine)
        else:
            with self.reference_unit(ctx, engine) as unit:
                unit.send(sql, {})
        return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    # Second, after scripts: see the module's docstring.
    from app.core.db import pipelined, tenant_transaction_sync

    try:
        from app.tenants.service import create_tenant
    except ImportError:  # a commit from before the domain layout
        from app.services.tenants import create_tenant  # type: ignore[import-not-found,no-redef]

    reference_sql = pipelined("SELECT 1")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the topology's run name (unique per side)")
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args(argv)
    Protocol.claim_stdout()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    config = TopologyConfig(artifact_dir=args.artifacts, name=args.name, stop_grace_s=2)
    with Topology(config) as topo:
        assert topo.dsns is not None
        gate = mock_boundary(topo.dsns.runtime_sync, topo.mock_url)
        assert gate.engine is not None
        with gate.engine.begin() as conn:
            tenant = create_tenant(conn, f"ab-{args.name}", user_id="ab")
        for service in ("api", "worker"):
            topo.stop_service(service)
        for n in range(args.warmup):
            gate.call(tenant.context, "route", f"ab-warmup-{n}", f"warm-up question {n}")
        timer = UnitTimer()
        timer.install()
        reply({"ready": True, "commit": commit})
        for block, line in enumerate(sys.stdin):
            request = json.loads(line)
            if request.get("quit"):
                break
            walls: dict[str, float] = {}
            units: list[list[float]] = []
            for n in range(int(request["calls"])):
                timer.units.clear()
                started = time.perf_counter()
                outcome = gate.call(tenant.context, "route", f"ab-{block}-{n}", f"ab question {block}-{n}")
                walls[outcome.call_id] = (time.perf_counter() - started) * 1000
                units.append(list(timer.units))
                if outcome.status != "succeeded" or outcome.was_cached:
                    reply({"error": f"call {block}-{n}: {outcome.status} {outcome.blocked_reason or ''}"})
                    return 1
            with tenant_transaction_sync(tenant.context, gate.engine) as conn:
                latency = {str(r.id): float(r.latency_ms) for r in conn.execute(LATENCIES, {"ids": list(walls)})}
            reference = [
                timer.reference(tenant.context, gate.engine, reference_sql) for _ in range(int(request["calls"]))
            ]
            overhead = [wall - latency[call] for call, wall in walls.items()]
            reply({"overhead_ms": overhead, "units_ms": units, "reference_ms": reference})
    return 0


if __name__ == "__main__":
    sys.exit(main())
