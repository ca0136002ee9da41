"""Does settling one LLM call cost more as its tenant makes more calls? Statement by statement.

    python -m scripts.bench.settle_growth [--blocks 10] [--calls 250] [--ownership equality]
                                          [--output artifacts/bench/settle_growth.json]

Brings up its own topology, stops the api and worker (the isolated condition of
``llm_boundary_bench``), and, as the bootstrap superuser of that throwaway cluster, installs a copy
of ``llm_settle`` (backend/sql/functions) that marks ``clock_timestamp()`` between its statements
and reports the intervals as a notice. Then one tenant makes ``--blocks`` x ``--calls``
provider-backed calls through the boundary, and each block's median of every statement is reported:
the context's verification, the reservation's return, the hour's count, and the call's own rows
(ledger row, distillation records, cached answer).

``--ownership equality`` is the control: the ledger row's ownership check written as equalities
(``tenant_id = v_tenant AND user_id = v_user``, as before migration 0030). PL/pgSQL caches the
statement's plan while ``llm_api_calls`` is small, and that plan may reach the row through the
(tenant_id, request_id, endpoint) index with only its tenant column, reading every call of the
tenant. ``growth`` is the last block's median of the call's-own-rows statement over the first's.

Exit 0 when it measured, 2 when the topology could not be brought up.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event

from app.tenants.service import create_tenant
from scripts.bench.llm_calls import mock_boundary
from scripts.bench.peers import run_identity
from scripts.harness import EXIT_CODES_HELP, REPO_ROOT, ExitCode, emit
from scripts.topology import Topology, TopologyConfig, TopologyError

SETTLE = REPO_ROOT / "backend" / "sql" / "functions" / "llm_settle.sql"
STATEMENTS = ("verify", "release", "hourly", "own_rows")
# Where each mark goes: before each statement, and the report after the last one measured.
MARKS = (
    ("    SELECT c.tenant_id, c.user_id INTO v_tenant", "t0"),
    ("    PERFORM public.llm_release", "t1"),
    ("    INSERT INTO public.llm_hourly_shutoff", "t2"),
    ("    WITH finished AS", "t3"),
    ("    IF FOUND AND p_close_breaker THEN", "t4"),
)
REPORT = (
    "    RAISE NOTICE 'settle-marks %,%,%,%', extract(epoch FROM t1 - t0) * 1000, extract(epoch FROM t2 - t1) * 1000, "
    "extract(epoch FROM t3 - t2) * 1000, extract(epoch FROM t4 - t3) * 1000;\n"
)
OWNERSHIP = {
    "row-comparison": None,
    "equality": (
        " AND (tenant_id, user_id) IS NOT DISTINCT FROM (v_tenant, v_user)",
        " AND tenant_id = v_tenant AND user_id = v_user",
    ),
}


def instrumented(source: str, ownership: str) -> str:
    """``llm_settle`` as the file defines it, with the marks, and the ownership check asked for."""
    text = source.replace(
        "    v_metadata uuid := gen_random_uuid();\n",
        "    v_metadata uuid := gen_random_uuid();\n"
        "    t0 timestamptz; t1 timestamptz; t2 timestamptz; t3 timestamptz; t4 timestamptz;\n",
    )
    for anchor, mark in MARKS:
        if anchor not in text:
            raise ValueError(f"llm_settle.sql no longer holds {anchor.strip()!r}: the marks need updating")
        report = REPORT if mark == "t4" else ""
        text = text.replace(anchor, f"    {mark} := clock_timestamp();\n{report}{anchor}", 1)
    swap = OWNERSHIP[ownership]
    if swap is not None:
        if swap[0] not in text:
            raise ValueError(f"llm_settle.sql no longer holds {swap[0].strip()!r}")
        text = text.replace(swap[0], swap[1])
    return text


def block_medians(marks: list[list[float]]) -> dict[str, float]:
    columns = list(zip(*marks, strict=True))
    return {name: round(statistics.median(values), 3) for name, values in zip(STATEMENTS, columns, strict=True)}


def measure(blocks: int, calls: int, ownership: str, artifacts: Path) -> list[dict[str, float]]:
    marks: list[list[float]] = []

    def collect(diagnostic: Any) -> None:
        found = re.match(r"settle-marks (.*)", diagnostic.message_primary or "")
        if found:
            marks.append([float(value) for value in found.group(1).split(",")])

    config = TopologyConfig(artifact_dir=artifacts, name="settle-growth", stop_grace_s=2)
    with Topology(config) as topo:
        assert topo.dsns is not None
        with psycopg.connect(topo.superuser_url(), autocommit=True) as superuser:
            superuser.execute(instrumented(SETTLE.read_text(encoding="utf-8"), ownership).encode())
        gate = mock_boundary(topo.dsns.runtime_sync, topo.mock_url)
        assert gate.engine is not None
        event.listen(gate.engine, "connect", lambda dbapi, _record: dbapi.add_notice_handler(collect))
        with gate.engine.begin() as conn:
            tenant = create_tenant(conn, "settle-growth", user_id="bench")
        for service in ("api", "worker"):
            topo.stop_service(service)
        found: list[dict[str, float]] = []
        for block in range(blocks):
            marks.clear()
            for n in range(calls):
                outcome = gate.call(tenant.context, "route", f"growth-{block}-{n}", f"growth question {block}-{n}")
                assert outcome.status == "succeeded" and not outcome.was_cached, outcome
            assert len(marks) == calls, f"{len(marks)} settle marks for {calls} calls"
            found.append({"calls_so_far": (block + 1) * calls, **block_medians(marks)})
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--calls", type=int, default=250, help="boundary calls per block")
    parser.add_argument("--ownership", choices=sorted(OWNERSHIP), default="row-comparison")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "artifacts" / "bench" / "settle_growth.json")
    args = parser.parse_args(argv)
    try:
        blocks = measure(args.blocks, args.calls, args.ownership, args.output.parent / "settle-growth-run")
    except (TopologyError, AssertionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE_OR_ENVIRONMENT
    emit(
        {
            "name": "settle_growth",
            "command": "python -m scripts.bench.settle_growth " + " ".join(argv if argv is not None else sys.argv[1:]),
            **run_identity(),
            "condition": "isolated: api and worker stopped, one caller, one tenant, provider-backed successes",
            "ownership_check": args.ownership,
            "blocks": blocks,
            "growth": round(blocks[-1]["own_rows"] / max(blocks[0]["own_rows"], 0.001), 2),
        },
        args.output,
    )
    return ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
